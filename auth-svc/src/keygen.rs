//! `auth-svc keygen --alg RS256|EdDSA [--pem]`: prints a new signing key, once, to stdout.
//!
//! By default the Secrets Manager document auth-svc reads with `JWT_SECRET_ARN`,
//! `{"alg": "...", "private_key": "<PKCS#8 PEM>"}` (the format of `ecs/deploy/signing_key.sh`),
//! to pipe into `aws secretsmanager create-secret|put-secret-value --secret-string
//! file:///dev/stdin`; with `--pem` the PKCS#8 PEM alone (`JWT_PRIVATE_KEY` for local runs).
//! The key goes to stdout only: never to a file, a log or stderr.

use std::io::Write;
use std::process::ExitCode;

use platform::keyring::{Alg, PrivateKey};

const USAGE: &str = "usage: auth-svc keygen --alg RS256|EdDSA [--pem]";

/// What `args` (after `keygen`) ask for: the algorithm and whether to print the PEM alone.
pub fn parse_args(args: &[String]) -> Result<(Alg, bool), String> {
    let mut alg = None;
    let mut pem = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--alg" => {
                let value = it.next().ok_or("--alg needs a value")?;
                alg = Some(value.parse::<Alg>().map_err(|e| format!("--alg {e}"))?);
            }
            "--pem" => pem = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    match alg {
        Some(Alg::HS256) => Err("--alg HS256 has no key pair; the HS256 secret is any 32+ bytes".into()),
        Some(a) => Ok((a, pem)),
        None => Err("--alg is required".into()),
    }
}

/// Runs the subcommand with `args` (after `keygen`).
pub fn run(args: &[String]) -> ExitCode {
    let (alg, pem_only) = match parse_args(args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("auth-svc keygen: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let pem = match PrivateKey::generate(alg) {
        Ok((_, pem)) => pem,
        Err(e) => {
            eprintln!("auth-svc keygen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = if pem_only {
        pem.expose().to_owned()
    } else {
        format!("{}\n", serde_json::json!({"alg": alg.as_str(), "private_key": pem.expose()}))
    };
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auth-svc keygen: cannot write the key: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn keygen_takes_an_asymmetric_alg() {
        assert_eq!(parse_args(&args(&["--alg", "RS256"])), Ok((Alg::RS256, false)));
        assert_eq!(parse_args(&args(&["--pem", "--alg", "EdDSA"])), Ok((Alg::EdDSA, true)));
        assert!(parse_args(&args(&["--alg", "HS256"])).is_err());
        assert!(parse_args(&args(&["--alg", "none"])).is_err());
        assert!(parse_args(&args(&["--alg"])).is_err());
        assert!(parse_args(&args(&[])).is_err());
        assert!(parse_args(&args(&["--alg", "RS256", "--out", "f"])).is_err());
    }
}
