# Read every .sav and .dta of a tables folder with haven, as an R user would, and print what
# it sees: per file its rows and columns, per labelled variable its labels (code<TAB>label).
# Used by tests/test_outputs.py (skipped where R or haven is missing).
suppressPackageStartupMessages(library(haven))
folder <- commandArgs(trailingOnly = TRUE)[1]
files <- list.files(folder, pattern = "\\.(sav|dta)$", full.names = TRUE)
for (path in files) {
  data <- if (grepl("\\.sav$", path)) read_sav(path) else read_dta(path)
  cat("FILE", basename(path), nrow(data), ncol(data), "\n", sep = "\t")
  for (name in names(data)) {
    labels <- attr(data[[name]], "labels")
    if (!is.null(labels)) {
      factor <- as_factor(data[[name]], levels = "labels")  # what a researcher would do
      for (i in seq_along(labels)) {
        cat("LABEL", name, format(unname(labels[i]), scientific = FALSE), names(labels)[i],
            "\n", sep = "\t")
      }
      cat("FACTOR", name, sum(!is.na(factor)), "\n", sep = "\t")
    }
  }
}
