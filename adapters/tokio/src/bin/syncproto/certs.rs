//! `syncproto certs`: a development CA and the certificates a server and
//! its clients present, with the extensions TLS checks (X.509 version 3,
//! key usages, server and client authentication, the server's names).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::failure::Failure;

/// Make a development CA and server and client certificates for TLS.
///
/// Writes a CA, a server certificate (for `serve`) and a client
/// certificate (for `dump`) to a directory, and prints the commands that
/// use them. The server's certificate carries Typha's usual CN and the
/// names clients dial; the client's carries Felix's usual CN. Not for
/// production: the CA's key sits unprotected beside them.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The directory to write ca.crt, ca.key, server.crt, server.key,
    /// client.crt and client.key to (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// A DNS name or IP address clients dial the server by; repeat for
    /// more.
    #[arg(long = "server-name", value_name = "NAME", default_values = ["localhost", "127.0.0.1", "::1"])]
    server_names: Vec<String>,
    /// The server certificate's Common Name (what `--tls-peer-cn` on the
    /// client checks).
    #[arg(long, default_value = "typha-server")]
    server_cn: String,
    /// The client certificate's Common Name (what `--tls-peer-cn` on the
    /// server checks).
    #[arg(long, default_value = "typha-client")]
    client_cn: String,
    /// How many days the certificates are valid.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
    days: u32,
    /// Overwrite files already there.
    #[arg(long)]
    force: bool,
}

/// One certificate and its key, as PEM.
struct Pair {
    name: &'static str,
    certificate: String,
    key: String,
}

const FILES: [&str; 6] = [
    "ca.crt",
    "ca.key",
    "server.crt",
    "server.key",
    "client.crt",
    "client.key",
];

pub(crate) fn run(args: Args) -> Result<(), Failure> {
    std::fs::create_dir_all(&args.out)
        .map_err(|error| Failure::runtime(format!("{}: {error}", args.out.display())))?;
    if !args.force
        && let Some(existing) = FILES
            .iter()
            .map(|file| args.out.join(file))
            .find(|path| path.exists())
    {
        return Err(Failure::runtime(format!(
            "{} exists (--force overwrites it)",
            existing.display()
        )));
    }
    let pairs = generate(&args)
        .map_err(|error| Failure::runtime(format!("cannot make the certificates: {error}")))?;
    for pair in &pairs {
        write(
            &args.out.join(format!("{}.crt", pair.name)),
            &pair.certificate,
            false,
        )?;
        write(
            &args.out.join(format!("{}.key", pair.name)),
            &pair.key,
            true,
        )?;
    }
    let dir = args.out.display();
    let host = args
        .server_names
        .first()
        .map_or("localhost", String::as_str);
    println!("wrote {dir}/{{ca,server,client}}.{{crt,key}}");
    println!(
        "serve: syncproto serve --tls-cert {dir}/server.crt --tls-key {dir}/server.key \
         --tls-ca {dir}/ca.crt --tls-peer-cn {} --snapshot datastore.jsonl",
        args.client_cn
    );
    println!(
        "dump:  syncproto dump --connect {}:5473 --tls-cert {dir}/client.crt --tls-key \
         {dir}/client.key --tls-ca {dir}/ca.crt --tls-peer-cn {}",
        bracketed(host),
        args.server_cn
    );
    Ok(())
}

/// An IPv6 address in brackets, for `host:port`.
fn bracketed(host: &str) -> String {
    match host.contains(':') {
        true => format!("[{host}]"),
        false => host.to_owned(),
    }
}

fn generate(args: &Args) -> Result<[Pair; 3], rcgen::Error> {
    let now = time::OffsetDateTime::now_utc();
    let validity = |params: &mut CertificateParams| {
        // A little slack for clocks that disagree.
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(i64::from(args.days));
    };
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "syncproto development CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca);
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = CertifiedIssuer::self_signed(ca, ca_key)?;

    let leaf = |names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose, name| {
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params);
        let key = KeyPair::generate()?;
        let certificate = params.signed_by(&key, &issuer)?;
        Ok::<_, rcgen::Error>(Pair {
            name,
            certificate: certificate.pem(),
            key: key.serialize_pem(),
        })
    };
    let server = leaf(
        args.server_names.clone(),
        &args.server_cn,
        ExtendedKeyUsagePurpose::ServerAuth,
        "server",
    )?;
    let client = leaf(
        Vec::new(),
        &args.client_cn,
        ExtendedKeyUsagePurpose::ClientAuth,
        "client",
    )?;
    let ca = Pair {
        name: "ca",
        certificate: issuer.pem(),
        key: ca_key_pem,
    };
    Ok([ca, server, client])
}

/// Writes a PEM file; keys readable by their owner only.
fn write(path: &Path, text: &str, secret: bool) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |error: std::io::Error| Failure::runtime(format!("{}: {error}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(failed)?;
    if secret {
        // `mode` applies to new files only; --force may rewrite an old one.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(failed)?;
    }
    file.write_all(text.as_bytes()).map_err(failed)
}
