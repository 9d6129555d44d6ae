# Golden values for tests/test_interrater_golden.py, computed with R (psych::ICC,
# psych::cohen.kappa, anova(lm())).
# Run from the repository root:  Rscript tests/golden/make_golden_interrater.R
# R is not a test dependency: the CSV files written here are committed and the tests only read
# them. Method matched to pipelines/analysis/interrater.py:
# - one-way forms (ICC1, ICC1k) on every target with 2+ ratings, unbalanced one-way ANOVA from
#   R's anova(lm()), k0 = (N - sum(k_i^2)/N) / (n - 1) in place of k, Shrout-Fleiss F bounds;
# - two-way forms (ICC2, ICC3, ICC2k, ICC3k) by psych::ICC(lmer = FALSE: the ANOVA mean squares,
#   not lme4 variance components, which psych uses by default) on the wide matrix of the targets
#   with the modal number of ratings, each target's ratings in columns ordered by rater id;
# - quadratic-weighted kappa by psych::cohen.kappa on the targets with exactly two ratings
#   (first column the rater whose id sorts first), levels 1..4.
suppressPackageStartupMessages(library(psych))
out <- "tests/golden"
rows <- list()
add <- function(case, statistic, estimate, low = NA, high = NA) {
  rows[[length(rows) + 1]] <<- data.frame(case = case, statistic = statistic,
                                          estimate = estimate, ci_low = low, ci_high = high)
}
psych_forms <- function(case, wide) {
  res <- ICC(wide, lmer = FALSE)$results
  for (i in seq_len(nrow(res))) {
    add(case, tolower(res$type[i]), res$ICC[i], res[i, "lower bound"], res[i, "upper bound"])
  }
}

# ---- Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges (also in ?psych::ICC) ----------
sf <- matrix(c(9, 2, 5, 8, 6, 1, 3, 2, 8, 4, 6, 8, 7, 1, 2, 6, 10, 5, 6, 9, 6, 2, 4, 7),
             ncol = 4, byrow = TRUE)
psych_forms("shrout_fleiss", sf)

# ---- seeded unbalanced design: 2 groups, raters nested, 2 or 3 raters, some ratings missing -
set.seed(20261202)
simulate <- function(group, n_targets, raters) {
  truth <- rnorm(n_targets, 2.5, 0.9)
  severity <- setNames(rnorm(length(raters), 0, 0.3), raters)
  do.call(rbind, lapply(seq_len(n_targets), function(i) {
    k <- if (runif(1) < 0.35) 3 else 2
    who <- sort(sample(raters, k))
    value <- pmin(pmax(round(truth[i] + severity[who] + rnorm(k, 0, 0.6)), 1), 4)
    data.frame(group = group, target = sprintf("%s-t%02d", group, i), rater = who,
               value = value)
  }))
}
ratings <- rbind(simulate("g1", 30, sprintf("r%02d", 1:6)),
                 simulate("g2", 25, sprintf("r%02d", 7:12)))
ratings$value[sample(nrow(ratings), 4)] <- NA
write.csv(ratings, file.path(out, "interrater_unbalanced.csv"), row.names = FALSE)

oneway <- function(case, d) {
  fit <- anova(lm(value ~ factor(target), data = d))
  msb <- fit[1, "Mean Sq"]; msw <- fit[2, "Mean Sq"]
  n <- length(unique(d$target)); big_n <- nrow(d); k_i <- table(d$target)
  k0 <- (big_n - sum(k_i^2) / big_n) / (n - 1)
  f <- msb / msw
  f_low <- f / qf(0.975, n - 1, big_n - n); f_high <- f * qf(0.975, big_n - n, n - 1)
  add(case, "icc1", (msb - msw) / (msb + (k0 - 1) * msw),
      (f_low - 1) / (f_low + k0 - 1), (f_high - 1) / (f_high + k0 - 1))
  add(case, "icc1k", (msb - msw) / msb, 1 - 1 / f_low, 1 - 1 / f_high)
  add(case, "k0", k0)
  add(case, "n_targets", n)
}
twoway <- function(case, d) {
  k_i <- table(d$target)
  counts <- table(k_i)
  modal <- as.integer(names(counts)[which.max(counts)])  # ties: the smaller k (sorted names)
  keep <- names(k_i)[k_i == modal]
  wide <- t(sapply(keep, function(id) {
    one <- d[d$target == id, ]
    one$value[order(one$rater)]
  }))
  res <- ICC(wide, lmer = FALSE)$results
  for (form in c("ICC2", "ICC3", "ICC2k", "ICC3k")) {
    i <- which(res$type == form)
    add(case, tolower(form), res$ICC[i], res[i, "lower bound"], res[i, "upper bound"])
  }
  add(case, "n_targets_twoway", length(keep))
  add(case, "k_twoway", modal)
}
kappa <- function(case, d) {
  k_i <- table(d$target)
  two <- d[d$target %in% names(k_i)[k_i == 2], ]
  two <- two[order(two$target, two$rater), ]
  pairs <- cbind(two$value[c(TRUE, FALSE)], two$value[c(FALSE, TRUE)])
  add(case, "kappa_quadratic", cohen.kappa(pairs, levels = 1:4)$weighted.kappa)
  add(case, "n_targets_kappa", nrow(pairs))
}
usable <- function(d) {
  d <- d[!is.na(d$value), ]
  k_i <- table(d$target)
  d[d$target %in% names(k_i)[k_i >= 2], ]
}
for (g in c("g1", "g2", "ALL")) {
  d <- usable(if (g == "ALL") ratings else ratings[ratings$group == g, ])
  oneway(g, d)
  twoway(g, d)
  kappa(g, d)
}

# ---- weighted kappa with a level nobody used (weights still on the codes 1..4) ---------------
a <- c(2, 3, 4, 2, 3, 3, 4, 2, 4, 3, 2, 4)
b <- c(2, 4, 4, 3, 3, 2, 4, 2, 3, 3, 3, 4)
write.csv(data.frame(a = a, b = b), file.path(out, "interrater_kappa.csv"), row.names = FALSE)
add("kappa_unused_level", "kappa_quadratic", cohen.kappa(cbind(a, b), levels = 1:4)$weighted.kappa)

write.csv(do.call(rbind, rows), file.path(out, "golden_interrater.csv"), row.names = FALSE)
cat("psych", format(packageVersion("psych")), R.version.string, "\n",
    file = file.path(out, "VERSIONS_interrater.txt"))
