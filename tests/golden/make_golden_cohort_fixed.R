# Golden values for tests/test_models_fast.py: the cohort fixed-effects model of change,
#   lmer(score ~ 0 + factor(cohort) + factor(cohort):post + (1 | participant), REML = TRUE)
# (pipelines/analysis/models.py::cohort_fixed_model), on up to 10 cohorts of the simulated
# programs in lmm_data.csv (made by make_golden_lmm.R): attrition, people seen at one wave
# only, tiny cohorts (one of 1 person), and participant labels shared by several cohorts
# (one person in the model, as (1 | participant) says).
#
# Columns per fixed effect: estimate and se_lme4 (vcov(): sigma^2 (X'V^-1X)^-1), the
# variances and REML log-likelihood; and the standard error the models table reports,
# se_hessian: as statsmodels' MixedLM, the fixed-effect block of the inverse of minus the
# Hessian of the REML log-likelihood (sigma^2 profiled out) in (beta, lam = participant
# variance / sigma^2), cross terms included. It is computed here from the dense likelihood
# (V = I + lam Z Z') at lme4's optimum by central differences with Richardson
# extrapolation; ci_low, ci_high and p are the normal-based Wald figures from it.
# Run from the repository root:  Rscript tests/golden/make_golden_cohort_fixed.R
# Needs Debian's r-base-core r-cran-lme4.
suppressPackageStartupMessages(library(lme4))
out <- "tests/golden"
data <- read.csv(file.path(out, "lmm_data.csv"))
first <- function(set, k) {
  d <- data[data$set == set, ]
  d[d$cohort %in% sort(unique(d$cohort))[seq_len(k)], ]
}
shared <- first("seen_once", 6)
shared$participant <- sub("^c[0-9]+_", "", shared$participant)  # p001 in every cohort
sets <- list(attrition = first("attrition", 8), seen_once = first("seen_once", 10),
             tiny_cohorts = first("tiny_cohorts", 10), balanced = first("balanced", 4),
             shared_labels = shared)

ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 2e-1, rhoend = 1e-12,
                                                        maxfun = 1e5))

# REML log-likelihood with sigma^2 profiled out and beta not (statsmodels' form).
reml_loglik <- function(par, X, Z, y) {
  p <- ncol(X); n <- nrow(X)
  beta <- par[1:p]; lam <- par[p + 1]
  V <- diag(n) + lam * tcrossprod(Z)
  Vi <- solve(V)
  r <- y - X %*% beta
  -0.5 * (as.numeric(determinant(V)$modulus) +
          as.numeric(determinant(crossprod(X, Vi %*% X))$modulus) +
          (n - p) * log(as.numeric(crossprod(r, Vi %*% r))))
}

# Steps h in each parameter's own scale (a small share of its standard error).
hessian <- function(f, x, h) {
  second <- function(i, j, s) {
    e <- function(k) { v <- numeric(length(x)); v[k] <- s * h[k]; v }
    (f(x + e(i) + e(j)) - f(x + e(i) - e(j)) - f(x - e(i) + e(j)) + f(x - e(i) - e(j))) /
      (4 * s * h[i] * s * h[j])
  }
  H <- matrix(0, length(x), length(x))
  for (i in seq_along(x)) for (j in i:length(x)) {
    H[i, j] <- H[j, i] <- (4 * second(i, j, 0.5) - second(i, j, 1)) / 3
  }
  H
}

rows <- lapply(names(sets), function(name) {
  d <- sets[[name]]
  m <- lmer(score ~ 0 + factor(cohort) + factor(cohort):post + (1 | participant), data = d,
            REML = TRUE, control = ctrl)
  stopifnot(!isSingular(m))
  X <- getME(m, "X"); Z <- as.matrix(getME(m, "Z")); y <- getME(m, "y")
  lam <- getME(m, "theta")[[1]]^2
  steps <- c(0.05 * sqrt(diag(as.matrix(vcov(m)))), 0.01 * lam)
  H <- hessian(function(par) reml_loglik(par, X, Z, y), c(fixef(m), lam), steps)
  p <- ncol(X)
  se <- sqrt(diag(solve(-H))[1:p])
  vc <- as.data.frame(VarCorr(m))
  z <- qnorm(0.975)
  terms <- names(fixef(m))
  data.frame(set = name, term = ifelse(grepl(":post$", terms), "change", "from_wave_mean"),
             cohort = sub(":post$", "", sub("^factor\\(cohort\\)", "", terms)),
             estimate = unname(fixef(m)), se_lme4 = unname(sqrt(diag(as.matrix(vcov(m))))),
             se_hessian = se, ci_low = unname(fixef(m)) - z * se,
             ci_high = unname(fixef(m)) + z * se, p = 2 * pnorm(-abs(unname(fixef(m)) / se)),
             var_participant = vc$vcov[vc$grp == "participant"], var_residual = sigma(m)^2,
             reml_loglik = as.numeric(logLik(m)), n_obs = nrow(d))
})
write.csv(do.call(rbind, rows), file.path(out, "golden_cohort_fixed.csv"), row.names = FALSE)
cat("lme4", as.character(packageVersion("lme4")), R.version.string, "\n",
    file = file.path(out, "VERSIONS_cohort_fixed.txt"))
