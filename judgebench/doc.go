// Package judgebench measures the decision quality of coalmine's judges. It simulates canary
// analyses with fixed seeds (counter increases per 10 s interval for a baseline and a canary,
// healthy or regressed, over a grid of error rates, ratios and traffic plus ramps, incidents,
// bursty errors and latency regressions), feeds every judge the same streams through the
// analyzer's own API, and reports per judge how often a healthy canary was rolled back, how
// fast a regression was caught and how fast a healthy canary was promoted, against Wald's
// SPRT for the true ratio as the floor.
package judgebench
