//! The TLS half of the throwaway Postgres: certificates made at test time,
//! and the second server that presents them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tokio::sync::OnceCell;

use super::{fresh_schema_on, run, start_server, Server};

/// A throwaway server that speaks TLS too: a fresh schema's URL on it (host
/// `localhost`, no sslmode yet), and the CA file its certificate chains to.
pub async fn tls_server() -> (String, PathBuf) {
    static SERVER: OnceCell<Result<Server, String>> = OnceCell::const_new();
    let server = match SERVER.get_or_init(|| start_server(true)).await {
        Ok(server) => server,
        Err(message) => panic!("{message}"),
    };
    let url = fresh_schema_on(&server.url, "the throwaway TLS server").await;
    (url, server.ca.clone().expect("a TLS server has a CA"))
}

/// Writes a CA made now to `dir/ca.crt`, and a certificate it signs for
/// localhost to `data/server.crt` and `data/server.key`, the key owned by the
/// server's user and private to it, as Postgres demands.
pub(super) fn write_certificates(dir: &Path, data: &Path, as_root: bool) -> Result<(), String> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use std::os::unix::fs::PermissionsExt as _;
    let failed = |error: rcgen::Error| format!("cannot make a test certificate: {error}");
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().map_err(failed)?)
        .map_err(failed)?;
    let key = KeyPair::generate().map_err(failed)?;
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .and_then(|params| params.signed_by(&key, &ca))
        .map_err(failed)?;
    let (cert_path, key_path) = (data.join("server.crt"), data.join("server.key"));
    for (path, pem) in [
        (dir.join("ca.crt"), ca.pem()),
        (cert_path.clone(), cert.pem()),
        (key_path.clone(), key.serialize_pem()),
    ] {
        fs::write(&path, pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot make {} private: {e}", key_path.display()))?;
    if as_root {
        run(Command::new("chown")
            .arg("postgres:")
            .arg(&cert_path)
            .arg(&key_path))?;
    }
    Ok(())
}
