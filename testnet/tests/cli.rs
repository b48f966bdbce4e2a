//! The `bftime-testnet sim` command line: bad arguments exit 2 with one line; `--json`
//! prints exactly one object with the documented fields.

use std::process::Command;

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bftime-testnet"))
        .arg("sim")
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    // Each with a word the one line must contain, so it says what is wrong.
    for (args, names) in [
        (&["--nodes", "0"][..], "nodes"),
        (&["--nodes", "10", "--faulty", "10"], "faulty"),
        (&["--delay-ms", "-1"], "delay"),
        (&["--delay-ms=-1"], "delay"),
        (&["--jitter-ms", "-0.5"], "jitter"),
        (&["--strategy", "sneaky"], "sneaky"),
        (&["--rounds", "0"], "rounds"),
        (&["--no-such-flag"], "no-such-flag"),
    ] {
        let out = sim(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(names), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn json_has_the_documented_fields() {
    let out = sim(&[
        "--nodes",
        "7",
        "--faulty",
        "2",
        "--strategy",
        "liar",
        "--rounds",
        "10",
        "--seed",
        "3",
        "--json",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim().lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for field in [
        "nodes",
        "faulty",
        "strategy",
        "algorithm",
        "seed",
        "rounds",
        "max_skew_ns",
        "p50_skew_ns",
        "converged_round",
        "false_quarantines",
        "faulty_suspected",
        "delay_uncertainty_ns",
        "lundelius_lynch_bound_ns",
        "wl_bound_ns",
        "max_rate_error_ppm",
        "crypto",
        "wall_ms",
    ] {
        assert!(v.get(field).is_some(), "missing {field}");
    }
    assert_eq!(v["crypto"], "ed25519");
}
