"""Pure objectives: functions of arrays, distributions or callables and a key, per-example nats.

| objective | what |
|---|---|
| `dequantization_bound` | log p((x + u)/K) - D log K - log q(u\\|x): uniform or variational dequantization |
| `importance_weighted_dequantization_bound` | its S-sample importance-weighted estimate |
| `bits_per_dim` | nats per example to bits per dimension |
| `logit_space_log_prob` | the MAF paper's logit-space log-likelihood and its bound on the pixels |
| `elbo` | the ELBO with its reconstruction and KL terms |
| `iwae_bound` | the k-sample importance-weighted bound |
| `elbo_surgery`, `aggregated_posterior` | reconstruction, mutual information and marginal KL; q_agg |
| `deterministic_flow_elbo` | a flow read as a VAE: its ELBO is its log-likelihood |
| `importance_weighted_bound`, `log_mean_exp` | the one importance-weighted estimator the others use |
"""

from dgmjax.objectives.dequantization import (
    bits_per_dim,
    dequantization_bound,
    importance_weighted_dequantization_bound,
    logit_space_log_prob,
)
from dgmjax.objectives.elbo import analytic_kl, deterministic_flow_elbo, elbo, iwae_bound
from dgmjax.objectives.importance import importance_weighted_bound, log_mean_exp
from dgmjax.objectives.surgery import aggregated_posterior, elbo_surgery

__all__ = [
    "aggregated_posterior",
    "analytic_kl",
    "bits_per_dim",
    "deterministic_flow_elbo",
    "dequantization_bound",
    "elbo",
    "elbo_surgery",
    "importance_weighted_bound",
    "importance_weighted_dequantization_bound",
    "iwae_bound",
    "log_mean_exp",
    "logit_space_log_prob",
]
