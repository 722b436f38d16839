//! Certificates made at test time: a CA, and leaf certificates it signs,
//! written as PEM files into a directory of the caller's.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A certificate authority that signs leaf certificates.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, as PEM files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key"))
            .expect("a self-signed CA");
        Self { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate to `dir/name`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        write(dir, name, &self.pem())
    }

    /// A certificate for `names` (DNS names, or IP addresses as text),
    /// written to `dir/{stem}.crt` and `dir/{stem}.key`, the key readable
    /// by its owner only (Postgres refuses it otherwise).
    pub fn leaf(&self, names: &[&str], dir: &Path, stem: &str) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &self.issuer)
            .expect("signed");
        let leaf = Leaf {
            cert: write(dir, &format!("{stem}.crt"), &cert.pem()),
            key: write(dir, &format!("{stem}.key"), &key.serialize_pem()),
        };
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&leaf.key, std::fs::Permissions::from_mode(0o600))
            .expect("key mode");
        leaf
    }
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("written");
    path
}

/// A new, empty directory under the system's temporary one.
pub fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "osmium-{label}-{}-{}",
        std::process::id(),
        crate::helpers::next_user_id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
