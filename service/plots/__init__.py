"""PNG plots of jobs and datasets: curves, decision regions, fitted curves, the data itself."""
