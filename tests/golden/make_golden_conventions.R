# Golden values for the conventions tests in tests/test_reliability_golden.py.
# Run from the repository root:  Rscript tests/golden/make_golden_conventions.R
# Needs Debian's r-base-core r-cran-psych; reads bfi.csv and sim_likert.csv written by
# make_golden.R.
suppressPackageStartupMessages(library(psych))
out <- "tests/golden"
write_csv <- function(x, name) write.csv(x, file.path(out, name), row.names = FALSE)
items <- read.csv(file.path(out, "bfi.csv"))
likert <- read.csv(file.path(out, "sim_likert.csv"))

# Omega total: bfi's A scale as answered (A1 not reverse-keyed: it loads negatively).
# psych's default flip = TRUE reverses it silently; capacitar reports the scale as
# declared and scored, which is psych::omega(nfactors = 1, flip = FALSE).
unkeyed <- na.omit(items[, c("A1", "A2", "A3", "A4", "A5")])
om_false <- suppressWarnings(omega(unkeyed, nfactors = 1, plot = FALSE, flip = FALSE))
om_true <- suppressWarnings(omega(unkeyed, nfactors = 1, plot = FALSE))
# Alpha with a constant item: psych::alpha drops it; capacitar keeps it (the alpha of
# the scale as scored, by the textbook formula) and flags it.
const <- cbind(likert, s9 = 3)
a_const <- suppressWarnings(alpha(const, warnings = FALSE))
k <- ncol(const)
kept <- k / (k - 1) * (1 - sum(apply(const, 2, var)) / var(rowSums(const)))
write_csv(data.frame(
  figure = c("n_unkeyed", "omega_total_flip_false", "omega_total_flip_true",
             "alpha_psych_drops_constant", "alpha_keeps_constant"),
  value = c(nrow(unkeyed), om_false$omega.tot, om_true$omega.tot, a_const$total$raw_alpha,
            kept)),
  "golden_conventions.csv")
cat("psych", as.character(packageVersion("psych")), R.version.string, "\n",
    file = file.path(out, "VERSIONS_conventions.txt"))
