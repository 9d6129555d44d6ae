# Golden values for tests/test_models_fast.py: the random-cohort model of change,
#   lmer(score ~ post + (1 + post | cohort) + (1 | cohort:participant), REML = TRUE)
# and its random-intercept form, on simulated programs with attrition, people seen only
# at one wave, tiny cohorts and cohorts whose change does not vary.
# Run from the repository root:  Rscript tests/golden/make_golden_lmm.R
# Needs Debian's r-base-core r-cran-lme4.
suppressPackageStartupMessages(library(lme4))
out <- "tests/golden"
set.seed(20261124)

# n_cohorts cohorts; sizes drawn from `sizes`; p_pre_only / p_post_only of people seen once.
simulate <- function(name, n_cohorts, sizes, sd_u0 = 3, sd_u1 = 2, p_pre_only = 0,
                     p_post_only = 0) {
  do.call(rbind, lapply(seq_len(n_cohorts), function(c) {
    n <- if (length(sizes) == 1) sizes else sample(sizes, 1)
    u0 <- rnorm(1, 0, sd_u0); u1 <- rnorm(1, 0, sd_u1); person <- rnorm(n, 0, 5)
    pre <- 40 + u0 + person + rnorm(n, 0, 3)
    post <- 40 + u0 + person + (-4 + u1) + rnorm(n, 0, 3)
    r <- runif(n)
    at_pre <- r >= p_post_only
    at_post <- r < p_post_only | r >= p_post_only + p_pre_only
    id <- sprintf("c%03d_p%03d", c, seq_len(n))
    rbind(data.frame(set = name, cohort = sprintf("c%03d", c), participant = id, post = 0,
                     score = round(pre, 4))[at_pre, ],
          data.frame(set = name, cohort = sprintf("c%03d", c), participant = id, post = 1,
                     score = round(post, 4))[at_post, ])
  }))
}
tiny <- simulate("tiny_cohorts", 8, 6:15, p_pre_only = .1, p_post_only = .1)
tiny <- rbind(tiny, transform(simulate("tiny_cohorts", 1, 1), cohort = "c901",
                              participant = "c901_p001"),
              transform(simulate("tiny_cohorts", 1, 2), cohort = "c902",
                        participant = sub("c001", "c902", participant)))
data <- rbind(
  simulate("balanced", 25, 20),
  simulate("attrition", 30, 8:25, p_pre_only = .25),
  simulate("seen_once", 20, 10:30, p_pre_only = .1, p_post_only = .15),
  tiny,
  simulate("no_slope_variance", 30, 10:30, sd_u1 = 0, p_pre_only = .1)
)
write.csv(data, file.path(out, "lmm_data.csv"), row.names = FALSE)

ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 2e-1, rhoend = 1e-12,
                                                        maxfun = 1e5),
                    check.conv.singular = "ignore")
summarise <- function(m, name, model) {
  vc <- as.data.frame(VarCorr(m))
  get <- function(grp, v1, v2 = NA) {
    row <- vc[vc$grp == grp & vc$var1 %in% v1 & (if (is.na(v2)) is.na(vc$var2) else vc$var2 %in% v2), ]
    if (nrow(row) == 0) NA else row$vcov
  }
  se <- sqrt(diag(as.matrix(vcov(m))))
  data.frame(set = name, model = model, intercept = unname(fixef(m)[1]),
             change = unname(fixef(m)[2]), se_intercept = se[1], se_change = se[2],
             var_cohort = get("cohort", "(Intercept)"), var_cohort_slope = get("cohort", "post"),
             cov_cohort = get("cohort", "(Intercept)", "post"),
             var_participant = get("cohort:participant", "(Intercept)"),
             var_residual = sigma(m)^2, reml_loglik = as.numeric(logLik(m)),
             singular = isSingular(m))
}
rows <- lapply(split(data, data$set), function(d) {
  name <- d$set[1]
  slope <- lmer(score ~ post + (1 + post | cohort) + (1 | cohort:participant), data = d,
                REML = TRUE, control = ctrl)
  intercept <- lmer(score ~ post + (1 | cohort) + (1 | cohort:participant), data = d,
                    REML = TRUE, control = ctrl)
  rbind(summarise(slope, name, "slope"), summarise(intercept, name, "intercept"))
})
write.csv(do.call(rbind, rows), file.path(out, "golden_lmm.csv"), row.names = FALSE)
cat("lme4", as.character(packageVersion("lme4")), R.version.string, "\n",
    file = file.path(out, "VERSIONS_lmm.txt"))
