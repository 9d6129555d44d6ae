# Golden values for tests/test_change_golden.py: paired tests and effect sizes (stats),
# mixed models (lme4) and random-effects meta-analysis (metafor).
# Run from the repository root:  Rscript tests/golden/make_golden_change.R
# Needs Debian's r-base-core r-cran-lme4 r-cran-metafor r-cran-psych.
suppressPackageStartupMessages({library(lme4); library(metafor)})
out <- "tests/golden"
write_csv <- function(x, name) write.csv(x, file.path(out, name), row.names = FALSE)
set.seed(20261123)

# ---- paired data sets -----------------------------------------------------
mk <- function(name, pre, post) data.frame(set = name, pre = pre, post = post)
pre <- rnorm(25, 50, 10)
sets <- rbind(
  mk("normal_25", pre, pre + rnorm(25, 3, 5)),
  mk("likert_12_ties_zeros", c(3, 4, 2, 5, 3, 3, 4, 2, 1, 3, 4, 5), c(4, 4, 3, 5, 4, 2, 5, 4, 3, 3, 5, 5)),
  mk("exact_8", c(10.1, 12.4, 9.8, 14.2, 11.0, 13.3, 8.7, 12.9), c(12.3, 12.0, 11.9, 17.5, 13.1, 13.0, 11.2, 16.8)),
  mk("large_60", pre60 <- rnorm(60, 20, 4), pre60 - rnorm(60, 1, 3)),
  mk("percent_40", p40 <- round(runif(40, 20, 80)), pmin(100, p40 + round(rnorm(40, 15, 12))))
)
write_csv(sets, "change_data.csv")

# d_z CI by inverting the noncentral t with uniroot (written here independently of Python).
dz_ci <- function(d, n, level = .95) {
  t <- d * sqrt(n); df <- n - 1; tail <- (1 - level) / 2
  f <- function(p) uniroot(function(ncp) pt(t, df, ncp) - p, c(t - 10 - abs(t), t + 10 + abs(t)),
                           tol = 1e-13)$root / sqrt(n)
  c(f(1 - tail), f(tail))
}
rows <- lapply(split(sets, sets$set), function(s) {
  tt <- t.test(s$post, s$pre, paired = TRUE)
  w <- suppressWarnings(wilcox.test(s$post, s$pre, paired = TRUE))
  d <- s$post - s$pre; n <- length(d)
  dz <- mean(d) / sd(d); ci <- dz_ci(dz, n)
  d_av <- mean(d) / sqrt((sd(s$pre)^2 + sd(s$post)^2) / 2)
  data.frame(set = s$set[1], n = n, mean_diff = mean(d), t = unname(tt$statistic),
             df = unname(tt$parameter), p = tt$p.value, ci_low = tt$conf.int[1],
             ci_high = tt$conf.int[2], d_z = dz, d_z_ci_low = ci[1], d_z_ci_high = ci[2],
             d_av = d_av, g_av = d_av * (1 - 3 / (4 * (n - 1) - 1)),
             wilcoxon_v = unname(w$statistic), wilcoxon_p = w$p.value)
})
write_csv(do.call(rbind, rows), "golden_change.csv")

# ---- mixed models on a simulated program ------------------------------------
# 40 cohorts of 8-20 people; cohort intercepts and change vary; 15% miss the post wave.
cohorts <- 40
prog <- do.call(rbind, lapply(1:cohorts, function(c) {
  n <- sample(8:20, 1); u0 <- rnorm(1, 0, 3); u1 <- rnorm(1, 0, 3); person <- rnorm(n, 0, 6)
  pre <- 40 + u0 + person + rnorm(n, 0, 4)
  post <- 40 + u0 + person + (-5 + u1) + rnorm(n, 0, 4)
  keep <- runif(n) > .15
  rbind(data.frame(cohort = sprintf("c%02d", c), participant = sprintf("c%02d_p%02d", c, 1:n),
                   post = 0, score = round(pre, 4)),
        data.frame(cohort = sprintf("c%02d", c), participant = sprintf("c%02d_p%02d", c, 1:n),
                   post = 1, score = round(post, 4))[keep, ])
}))
write_csv(prog, "mixed_data.csv")
m1 <- lmer(score ~ post + (1 + post | cohort) + (1 | cohort:participant), data = prog, REML = TRUE)
few <- prog[prog$cohort %in% c("c01", "c02", "c03", "c04"), ]
m2 <- lmer(score ~ 0 + factor(cohort) + factor(cohort):post + (1 | participant), data = few,
           REML = TRUE)
fx <- function(m, model) data.frame(model = model, term = names(fixef(m)), estimate = unname(fixef(m)),
                                    se = unname(sqrt(diag(vcov(m)))))
stopifnot(!isSingular(m1), !isSingular(m2))  # a singular fit would not be a fair comparison
write_csv(rbind(fx(m1, "random_cohorts"), fx(m2, "cohort_fixed")), "golden_mixed.csv")

# ---- random-effects meta-analysis of cohort d_z ------------------------------
meta_in <- data.frame(yi = c(0.82, 1.10, 0.45, 0.95, 1.40, 0.30, 0.70),
                      n = c(18, 22, 9, 15, 12, 25, 14))
meta_in$vi <- 1 / meta_in$n + meta_in$yi^2 / (2 * meta_in$n)
write_csv(meta_in, "meta_data.csv")
meta <- function(method) {
  r <- rma(yi, vi, data = meta_in, method = method)
  data.frame(method = method, estimate = as.numeric(r$beta), se = r$se, ci_low = r$ci.lb,
             ci_high = r$ci.ub, p = r$pval, tau2 = r$tau2, i2 = r$I2, q = r$QE)
}
write_csv(rbind(meta("DL"), meta("REML")), "golden_meta.csv")

# ---- figures of the change table: Hake's g, attrition, RCI -------------------------
# The percent_40 pairs are the completers of a knowledge test; 12 more people were seen at
# baseline only. The RCI reliability is the n-weighted alpha of two forms (psych::alpha
# on the two halves of sim_binary.csv, 150 people each); the baseline SD is everyone's.
suppressPackageStartupMessages(library(psych))
p40 <- sets[sets$set == "percent_40", ]
lost <- round(runif(12, 20, 80))
write_csv(data.frame(participant = sprintf("p%02d", seq_len(40 + 12)),
                     pre = c(p40$pre, lost), post = c(p40$post, rep(NA, 12))),
          "change_table_data.csv")
binary <- read.csv(file.path(out, "sim_binary.csv"))
form_alpha <- function(rows) alpha(binary[rows, ], check.keys = FALSE, warnings = FALSE)$total$raw_alpha
alphas <- c(form_alpha(1:150), form_alpha(151:300))
r_xx <- sum(alphas * 150) / 300
sd_base <- sd(c(p40$pre, lost))
s_diff <- sqrt(2) * sd_base * sqrt(1 - r_xx)
rci <- (p40$post - p40$pre) / s_diff
n_lost <- length(lost); n_kept <- nrow(p40)
pooled_sd <- sqrt(((n_lost - 1) * var(lost) + (n_kept - 1) * var(p40$pre)) / (n_lost + n_kept - 2))
published <- 0.85  # a declared alpha, used below 30 people at baseline
figures <- c(
  hake_g = (mean(p40$post) - mean(p40$pre)) / (100 - mean(p40$pre)),
  attrition_diff = mean(lost) - mean(p40$pre), attrition_d = (mean(lost) - mean(p40$pre)) / pooled_sd,
  n_lost = n_lost, alpha_form_a = alphas[1], alpha_form_b = alphas[2], rci_reliability = r_xx,
  rci_s_diff = s_diff, rci_improved = sum(rci > 1.96), rci_deteriorated = sum(rci < -1.96),
  rci_no_change = sum(abs(rci) <= 1.96), rci_first = rci[1], rci_sum_abs = sum(abs(rci)),
  s_diff_published = sqrt(2) * sd(p40$pre[1:20]) * sqrt(1 - published))
write_csv(data.frame(figure = names(figures), value = unname(figures)), "golden_change_table.csv")

cat("lme4", as.character(packageVersion("lme4")), "metafor", as.character(packageVersion("metafor")),
    R.version.string, "\n", file = file.path(out, "VERSIONS_change.txt"))
