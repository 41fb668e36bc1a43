//! TLS between clients and servers, as upstream deployments set it up: the
//! server requires a client certificate signed by a configured CA and,
//! optionally, a particular Common Name or URI SAN; the client verifies the
//! server's certificate against a CA and, optionally, a Common Name or URI
//! SAN (Typha's certificates need not carry the DNS name clients dial, so
//! when a CN or URI SAN is configured it replaces the host name check).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use x509_parser::extensions::GeneralName;

/// What went wrong setting up or checking TLS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate, key or CA file could not be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// rustls refused the configuration (for example a CA certificate it
    /// cannot use).
    #[error("TLS configuration: {}", describe(.0))]
    Config(#[from] rustls::Error),
    /// The certificate verifier could not be built from the CA.
    #[error("TLS verifier: {0}")]
    Verifier(String),
    /// The peer's certificate is signed by the CA but is not the one
    /// required.
    #[error(
        "peer certificate (CN {found_cn:?}, URI SANs {found_uris:?}) matches neither {required}"
    )]
    PeerIdentity {
        /// What was required.
        required: PeerRequirement,
        /// The certificate's Common Name.
        found_cn: Option<String>,
        /// The certificate's URI SANs.
        found_uris: Vec<String>,
    },
    /// The peer sent no certificate.
    #[error("peer presented no certificate")]
    NoPeerCertificate,
}

/// Which certificate the peer must present beyond being signed by the CA:
/// upstream's `ClientCN`/`ClientURISAN` (server side) and
/// `TyphaCN`/`TyphaURISAN` (client side). When both are set, matching
/// either suffices; when neither is, any certificate the CA signed does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerRequirement {
    /// The Common Name the certificate must carry.
    pub common_name: Option<String>,
    /// A URI Subject Alternative Name the certificate must carry.
    pub uri_san: Option<String>,
}

impl PeerRequirement {
    /// Whether anything beyond the CA signature is required.
    pub fn is_set(&self) -> bool {
        self.common_name.is_some() || self.uri_san.is_some()
    }

    /// Checks a DER certificate (already verified against the CA).
    pub fn check(&self, certificate: &CertificateDer<'_>) -> Result<(), TlsError> {
        if !self.is_set() {
            return Ok(());
        }
        let (found_cn, found_uris) = identity(certificate);
        let cn_ok = self
            .common_name
            .as_ref()
            .is_some_and(|cn| found_cn.as_ref() == Some(cn));
        let uri_ok = self
            .uri_san
            .as_ref()
            .is_some_and(|uri| found_uris.contains(uri));
        if cn_ok || uri_ok {
            return Ok(());
        }
        Err(TlsError::PeerIdentity {
            required: self.clone(),
            found_cn,
            found_uris,
        })
    }
}

impl fmt::Display for PeerRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.common_name, &self.uri_san) {
            (Some(cn), Some(uri)) => write!(f, "CN {cn:?} or URI SAN {uri:?}"),
            (Some(cn), None) => write!(f, "CN {cn:?}"),
            (None, Some(uri)) => write!(f, "URI SAN {uri:?}"),
            (None, None) => f.write_str("anything"),
        }
    }
}

/// The certificate's Common Name and URI SANs (empty if it does not parse).
fn identity(certificate: &CertificateDer<'_>) -> (Option<String>, Vec<String>) {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(certificate) else {
        return (None, Vec::new());
    };
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let uris = match parsed.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some((*uri).to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    (cn, uris)
}

/// A certificate chain and its private key, as this side presents them.
#[derive(Debug)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Loads a PEM certificate chain and a PEM private key, and checks
    /// what TLS would refuse later in words that name the files: the
    /// certificate must be X.509 version 3, and the key its own.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let chain = load_certificates(cert)?;
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|error| file_error(key, error))?;
        if let Some(version) = chain.first().and_then(x509_version)
            && version != 3
        {
            return Err(file_error(
                cert,
                format!(
                    "an X.509 version {version} certificate; TLS needs version 3 (`openssl x509 -req` \
                     makes version 1 unless given extensions with -extfile)"
                ),
            ));
        }
        let signing_key = provider()
            .key_provider
            .load_private_key(key_der.clone_key())
            .map_err(|error| file_error(key, describe(&error)))?;
        if let Err(rustls::Error::InconsistentKeys(_)) =
            rustls::sign::CertifiedKey::new(chain.clone(), signing_key).keys_match()
        {
            return Err(file_error(
                key,
                format!(
                    "not the private key of the certificate in {}",
                    cert.display()
                ),
            ));
        }
        Ok(Identity {
            chain,
            key: key_der,
        })
    }

    /// Builds an identity from DER certificates and key (for example ones
    /// generated in memory).
    pub fn from_der(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Identity {
        Identity { chain, key }
    }
}

/// The X.509 version of a certificate (1, 2 or 3), if it parses.
fn x509_version(certificate: &CertificateDer<'_>) -> Option<u32> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).ok()?;
    Some(parsed.version().0 + 1)
}

/// A rustls error in words for the person who set up the certificates:
/// what is wrong, and with whose certificate. (rustls's own text prints
/// nested Debug values and says "peer" also of this side's certificate.)
pub fn describe(error: &rustls::Error) -> String {
    use rustls::AlertDescription as Alert;
    match error {
        rustls::Error::InvalidCertificate(problem) => {
            format!("the peer's certificate {}", certificate_problem(problem))
        }
        rustls::Error::NoCertificatesPresented => "the peer presented no certificate".to_owned(),
        rustls::Error::AlertReceived(
            alert @ (Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateUnknown
            | Alert::CertificateRequired
            | Alert::UnsupportedCertificate
            | Alert::CertificateExpired
            | Alert::AccessDenied
            | Alert::DecryptError),
        ) => format!(
            "the peer refused this side's certificate (TLS alert {alert:?}): it must be signed \
             by the CA the peer trusts, be valid now, and be a client certificate for a client \
             (a server one for a server)"
        ),
        rustls::Error::AlertReceived(alert) => {
            format!("the peer ended the TLS handshake (TLS alert {alert:?})")
        }
        rustls::Error::InconsistentKeys(_) => {
            "the private key does not belong to the certificate".to_owned()
        }
        rustls::Error::General(message) => message.clone(),
        other => other.to_string(),
    }
}

fn certificate_problem(problem: &CertificateError) -> String {
    let text = match problem {
        CertificateError::UnknownIssuer => "is not signed by the CA this side trusts",
        CertificateError::BadSignature => "has a signature that does not verify",
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "has expired",
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "is not valid yet (are the clocks right?)"
        }
        CertificateError::Revoked => "has been revoked",
        CertificateError::BadEncoding => "is not a valid X.509 certificate",
        CertificateError::NotValidForName => "is not valid for the name dialled",
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => {
            return format!(
                "is not valid for {:?}: its names are {}",
                expected.to_str(),
                match presented.is_empty() {
                    true => "none".to_owned(),
                    false => presented
                        .iter()
                        .map(|name| plain_name(name))
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            );
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "is not for this use: a server's needs the serverAuth extended key usage, a \
             client's clientAuth"
        }
        // webpki's reason comes as Debug text; this one people meet when
        // `openssl x509 -req` made the certificate.
        CertificateError::Other(other) if other.to_string().contains("UnsupportedCertVersion") => {
            "is an X.509 version 1 certificate; TLS needs version 3"
        }
        other => return format!("was refused: {other:?}"),
    };
    text.to_owned()
}

/// A name as webpki presents it (`DnsName("localhost")`,
/// `IpAddress(127.0.0.1)`), as a person writes it.
fn plain_name(name: &str) -> &str {
    for prefix in ["DnsName(\"", "IpAddress("] {
        if let Some(inner) = name.strip_prefix(prefix) {
            return inner.trim_end_matches(')').trim_end_matches('"');
        }
    }
    name
}

fn file_error(path: &Path, error: impl fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

/// Loads every certificate of a PEM file.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| file_error(path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(path, error))?;
    if certificates.is_empty() {
        return Err(file_error(path, "no PEM certificates found"));
    }
    Ok(certificates)
}

fn roots(ca: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for certificate in ca {
        store.add(certificate.clone())?;
    }
    Ok(Arc::new(store))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// A server configuration that requires a client certificate signed by one
/// of `ca`. Check the client's identity after the handshake with
/// [`PeerRequirement::check`] (the [`Server`](crate::Server) does).
pub fn server_config(
    identity: Identity,
    ca: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
        .build()
        .map_err(|error| TlsError::Verifier(error.to_string()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain, identity.key)?;
    Ok(Arc::new(config))
}

/// A client configuration that verifies the server against `ca` and, if
/// `peer` is set, its CN or URI SAN instead of the dialled host name;
/// presents `identity` when the server asks for a certificate.
pub fn client_config(
    identity: Option<Identity>,
    ca: &[CertificateDer<'static>],
    peer: PeerRequirement,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let inner = WebPkiServerVerifier::builder_with_provider(roots(ca)?, provider())
        .build()
        .map_err(|error| TlsError::Verifier(error.to_string()))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TyphaVerifier { inner, peer }));
    let config = match identity {
        Some(identity) => builder.with_client_auth_cert(identity.chain, identity.key)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Verifies the server's chain with webpki; when a CN or URI SAN is
/// required, that check replaces the host name check (and must pass).
#[derive(Debug)]
struct TyphaVerifier {
    inner: Arc<WebPkiServerVerifier>,
    peer: PeerRequirement,
}

impl ServerCertVerifier for TyphaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if !self.peer.is_set() {
            return chain;
        }
        match chain {
            // The chain is good; only the dialled name did not match, and a
            // required identity replaces that check.
            Ok(_)
            | Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(other) => return Err(other),
        }
        self.peer
            .check(end_entity)
            .map(|()| ServerCertVerified::assertion())
            .map_err(|error| rustls::Error::General(error.to_string()))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// webpki's reason for a version 1 certificate arrives as Debug text
    /// inside `OtherError`: checked on a real one (made by `openssl x509
    /// -req`), so that a rustls upgrade that changes the text fails here.
    #[test]
    fn a_version_1_peer_certificate_is_named_so() {
        let pem = |text: &str| {
            CertificateDer::pem_slice_iter(text.as_bytes())
                .next()
                .and_then(Result::ok)
                .unwrap_or_else(|| unreachable!("the test data is PEM"))
        };
        let ca = pem(include_str!("../tests/data/openssl-v1/ca.crt"));
        let leaf = pem(include_str!("../tests/data/openssl-v1/server.crt"));
        let verifier = roots(&[ca])
            .ok()
            .and_then(|roots| {
                WebPkiServerVerifier::builder_with_provider(roots, provider())
                    .build()
                    .ok()
            })
            .unwrap_or_else(|| unreachable!("the CA is usable"));
        let name = ServerName::try_from("localhost").unwrap_or_else(|_| unreachable!());
        let Err(error) = verifier.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
        else {
            unreachable!("webpki accepted a version 1 certificate")
        };
        assert_eq!(
            describe(&error),
            "the peer's certificate is an X.509 version 1 certificate; TLS needs version 3"
        );
        assert_eq!(x509_version(&leaf), Some(1));
    }

    #[test]
    fn names_are_shown_as_written() {
        let error = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("typha.example").unwrap_or_else(|_| unreachable!()),
            presented: vec![
                "DnsName(\"localhost\")".to_owned(),
                "IpAddress(127.0.0.1)".to_owned(),
            ],
        });
        assert_eq!(
            describe(&error),
            "the peer's certificate is not valid for \"typha.example\": its names are localhost, 127.0.0.1"
        );
    }
}
