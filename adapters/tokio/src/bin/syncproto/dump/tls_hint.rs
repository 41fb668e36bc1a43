//! What `dump` says when a connection fails in a way that usually means
//! TLS is set up differently on the two sides.

use syncproto_tokio::tls;
use syncproto_tokio::{Client, ConnectError};

use crate::options::TlsArgs;

/// A connect error, with the TLS reason in words and what to try.
pub(super) fn connect_error(error: &ConnectError, args: &TlsArgs) -> String {
    let ConnectError::Tls { address, source } = error else {
        return error.to_string();
    };
    let rustls_error = source
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let why = match rustls_error {
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. },
        )) => format!(
            "{}; connect by one of its names, give --tls-server-name, or require the \
             server's CN with --tls-peer-cn (which replaces the name check)",
            tls::describe(rustls_error.unwrap_or(&rustls::Error::HandshakeNotComplete))
        ),
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature,
        )) => {
            format!(
                "the server's certificate is not signed by the CA in {}",
                args.tls_ca
                    .as_deref()
                    .map_or_else(|| "--tls-ca".to_owned(), |ca| ca.display().to_string())
            )
        }
        Some(error) => tls::describe(error),
        None if source.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the TLS handshake: it may not use TLS, \
             or it refused this client's certificate (its log says which)"
                .to_owned()
        }
        None => source.to_string(),
    };
    format!("TLS handshake with {address} failed: {why}")
}

/// A socket error after connecting, the TLS reason in words when there is
/// one (with TLS 1.3 a server that refuses the client's certificate says
/// so only after the client's side of the handshake is done).
pub(super) fn io_error(error: &std::io::Error) -> String {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls_error) => tls::describe(tls_error),
        None => error.to_string(),
    }
}

/// After a connection closed before the server's hello without TLS: a
/// TLS server answers a plain hello with an alert and hangs up, which the
/// client sees as a cut-off message.
pub(super) fn closed(client: &Client, args: &TlsArgs) -> &'static str {
    if client.server_hello().is_none() && args.tls_cert.is_none() {
        " (if the server requires TLS, give --tls-cert, --tls-key and --tls-ca)"
    } else {
        ""
    }
}
