# Golden values for tests/test_reliability_golden.py, computed with R psych.
# Run from the repository root:  Rscript tests/golden/make_golden.R
# Needs Debian's r-base-core r-cran-psych r-cran-gparotation (R is not a test dependency:
# the CSV files written here are committed and the tests only read them).
suppressPackageStartupMessages({library(psych); library(GPArotation)})
out <- "tests/golden"
write_csv <- function(x, name) write.csv(x, file.path(out, name), row.names = FALSE)

# ---- data sets ------------------------------------------------------------
# psych's bfi: 2800 people, 25 items scored 1..6; the five 5-item scales and keys of ?bfi.
items <- bfi[, 1:25]
write_csv(items, "bfi.csv")
keys <- list(A = c("-A1", "A2", "A3", "A4", "A5"), C = c("C1", "C2", "C3", "-C4", "-C5"),
             E = c("-E1", "-E2", "E3", "E4", "E5"), N = c("N1", "N2", "N3", "N4", "N5"),
             O = c("O1", "-O2", "O3", "O4", "-O5"))
keyed <- function(data, key) {  # reverse keys as (min + max) - x, response range 1..6
  cols <- sub("^-", "", key)
  x <- data[, cols]
  for (i in which(startsWith(key, "-"))) x[, i] <- 7 - x[, i]
  x
}

# Simulated Likert scale with known loadings (one factor).
set.seed(20261122)
loadings <- c(.8, .75, .7, .65, .6, .55, .5, .4)
n <- 400
f <- rnorm(n)
latent <- sapply(loadings, function(l) l * f + sqrt(1 - l^2) * rnorm(n))
likert <- apply(latent, 2, function(v) as.integer(cut(v, c(-Inf, -1.2, -.4, .4, 1.2, Inf))))
colnames(likert) <- paste0("s", 1:8)
write_csv(likert, "sim_likert.csv")

# Simulated bifactor data: general factor .6, three group factors .5 on 4 items each.
g <- rnorm(500); s <- matrix(rnorm(1500), 500, 3)
bif <- sapply(1:12, function(j) .6 * g + .5 * s[, (j - 1) %/% 4 + 1] + rnorm(500, sd = .62))
colnames(bif) <- paste0("b", 1:12)
write_csv(round(bif, 6), "sim_bifactor.csv")
bif <- as.matrix(read.csv(file.path(out, "sim_bifactor.csv")))  # use exactly what was written

# Simulated 0/1 knowledge test (Rasch-like, 12 items).
theta <- rnorm(300); b <- seq(-1.5, 1.5, length.out = 12)
binary <- sapply(b, function(d) as.integer(runif(300) < plogis(theta - d)))
colnames(binary) <- paste0("k", 1:12)
write_csv(binary, "sim_binary.csv")

# ---- coefficients ---------------------------------------------------------
scale_row <- function(name, x) {
  x <- na.omit(as.data.frame(x))  # capacitar's rule: listwise within scale
  a <- alpha(x, warnings = FALSE)
  om <- suppressWarnings(omega(x, nfactors = 1, plot = FALSE))
  k <- ncol(x); tot <- rowSums(x)
  data.frame(scale = name, n = nrow(x), k = k,
             alpha = a$total$raw_alpha, std_alpha = a$total$std.alpha,
             lambda6 = a$total[["G6(smc)"]],
             feldt_low = a$feldt$lower.ci[[1]], feldt_high = a$feldt$upper.ci[[1]],
             omega_total = om$omega.tot,
             kr21 = if (all(unlist(x) %in% c(0, 1))) {
               m <- mean(tot); v <- mean((tot - m)^2); k / (k - 1) * (1 - m * (k - m) / (k * v))
             } else NA)
}
item_rows <- function(name, x) {
  x <- na.omit(as.data.frame(x))
  a <- alpha(x, warnings = FALSE)
  data.frame(scale = name, item = colnames(x), mean = a$item.stats$mean,
             sd = a$item.stats$sd, r_drop = a$item.stats$r.drop,
             alpha_if_dropped = a$alpha.drop$raw_alpha)
}
sets <- c(lapply(keys, function(k) keyed(items, k)),
          list(sim_likert = likert, sim_bifactor = bif, sim_binary = binary))
write_csv(do.call(rbind, Map(scale_row, names(sets), sets)), "golden_scales.csv")
write_csv(do.call(rbind, Map(item_rows, names(sets), sets)), "golden_items.csv")

# Omega hierarchical (Schmid-Leiman, oblimin) as psych::omega with nfactors = group factors.
# flip = FALSE: capacitar reverse-keys from the instrument and never flips items silently
# (psych flips items loading negatively on g, e.g. all of bfi's N items).
all_bfi <- na.omit(do.call(cbind, lapply(keys, function(k) keyed(items, k))))
om_bfi <- suppressWarnings(omega(all_bfi, nfactors = 5, plot = FALSE, flip = FALSE))
om_bif <- suppressWarnings(omega(bif, nfactors = 3, plot = FALSE, flip = FALSE))
write_csv(data.frame(set = c("bfi_25", "sim_bifactor"), nfactors = c(5, 3),
                     n = c(nrow(all_bfi), nrow(bif)),
                     omega_h = c(om_bfi$omega_h, om_bif$omega_h),
                     omega_total_sl = c(om_bfi$omega.tot, om_bif$omega.tot)),
          "golden_omega_h.csv")
cat("psych", as.character(packageVersion("psych")), "GPArotation",
    as.character(packageVersion("GPArotation")), R.version.string, "\n",
    file = file.path(out, "VERSIONS.txt"))
