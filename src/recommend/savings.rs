//! Monthly cost of requests and the savings of a recommendation: requests are what the
//! scheduler reserves, so they are what a cluster pays for (as OpenCost's request-based
//! allocation does). Cost = (cores x price per core-hour + GiB x price per GiB-hour) x
//! hours per month x replicas; a limit stands in for an unset request (Kubernetes defaults
//! the request to it).

use crate::model::{ContainerRole, Resources};

use super::policy::{GIB, Prices};

/// Monthly cost of one container's requests across `replicas` pods.
pub fn monthly_cost(r: &Resources, replicas: f64, prices: &Prices) -> f64 {
    let cpu = r.cpu_request.or(r.cpu_limit).unwrap_or(0.0);
    let memory = r.memory_request.or(r.memory_limit).unwrap_or(0.0);
    (cpu * prices.cpu_core_hour + memory / GIB * prices.memory_gib_hour) * prices.hours_per_month * replicas
}

/// Current minus recommended monthly cost (positive = saved). Init containers count zero:
/// they hold their requests only while the pod starts (the pod's effective request is the
/// larger of the biggest init container and the sum of the others).
pub fn monthly_savings(
    role: ContainerRole,
    current: &Resources,
    recommended: &Resources,
    replicas: f64,
    prices: &Prices,
) -> f64 {
    if role == ContainerRole::Init {
        return 0.0;
    }
    monthly_cost(current, replicas, prices) - monthly_cost(recommended, replicas, prices)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cpu: f64, gib: f64) -> Resources {
        Resources {
            cpu_request: Some(cpu),
            memory_request: Some(gib * GIB),
            ..Default::default()
        }
    }

    #[test]
    fn cost_and_savings_follow_prices_and_replicas() {
        let p = Prices::default();
        // One core and one GiB for a month: (0.031611 + 0.004237) x 730 = $26.169.
        let one = monthly_cost(&res(1.0, 1.0), 1.0, &p);
        assert!((one - 26.169_04).abs() < 1e-6, "{one}");
        let cases = [
            // (role, current, recommended, replicas, expected savings)
            (
                ContainerRole::App,
                res(2.0, 4.0),
                res(1.0, 1.0),
                3.0,
                3.0 * (0.031611 + 3.0 * 0.004237) * 730.0,
            ),
            (
                ContainerRole::Sidecar,
                res(0.1, 0.5),
                res(0.2, 0.5),
                2.0,
                -2.0 * 0.1 * 0.031611 * 730.0,
            ),
            (ContainerRole::Init, res(2.0, 4.0), res(1.0, 1.0), 3.0, 0.0),
        ];
        for (role, cur, rec, replicas, want) in cases {
            let got = monthly_savings(role, &cur, &rec, replicas, &p);
            assert!((got - want).abs() < 1e-9, "{role:?}: {got} vs {want}");
        }
        // A limit stands in for a missing request.
        let limit_only = Resources {
            cpu_limit: Some(1.0),
            ..Default::default()
        };
        assert!((monthly_cost(&limit_only, 1.0, &p) - 0.031611 * 730.0).abs() < 1e-9);
    }
}
