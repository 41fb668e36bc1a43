//! Options shared by several commands: TLS files and the wire format.

use std::path::PathBuf;

use clap::Args;
use rustls_pki_types::ServerName;
use syncproto::codec::WireFormat;
use syncproto_tokio::tls::{self, Identity, PeerRequirement};

use crate::failure::Failure;

/// TLS, as upstream deployments configure it.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct TlsArgs {
    /// This side's certificate (PEM, X.509 version 3); enables TLS.
    /// `syncproto certs` makes a set to try.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    pub(crate) tls_cert: Option<PathBuf>,
    /// This side's private key (PEM), the certificate's.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// The CA (PEM) the peer's certificate must be signed by.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// Also require this Common Name in the peer's certificate. On the
    /// client it replaces the check of the host name dialled, as upstream
    /// Felix's TyphaCN does.
    #[arg(long, value_name = "CN", requires = "tls_cert")]
    pub(crate) tls_peer_cn: Option<String>,
    /// Also require this URI SAN in the peer's certificate (either this or
    /// the CN suffices when both are given); on the client, like
    /// --tls-peer-cn, instead of the host name check.
    #[arg(long, value_name = "URI", requires = "tls_cert")]
    pub(crate) tls_peer_uri_san: Option<String>,
}

impl TlsArgs {
    fn identity(
        &self,
    ) -> Result<Option<(Identity, Vec<rustls_pki_types::CertificateDer<'static>>)>, Failure> {
        let (Some(cert), Some(key), Some(ca)) = (&self.tls_cert, &self.tls_key, &self.tls_ca)
        else {
            return Ok(None);
        };
        let identity = Identity::from_pem_files(cert, key).map_err(Failure::input)?;
        let ca = tls::load_certificates(ca).map_err(Failure::input)?;
        Ok(Some((identity, ca)))
    }

    fn peer(&self) -> PeerRequirement {
        PeerRequirement {
            common_name: self.tls_peer_cn.clone(),
            uri_san: self.tls_peer_uri_san.clone(),
        }
    }

    /// The server side's TLS, if enabled.
    pub(crate) fn server(
        &self,
    ) -> Result<Option<(std::sync::Arc<rustls::ServerConfig>, PeerRequirement)>, Failure> {
        let Some((identity, ca)) = self.identity()? else {
            return Ok(None);
        };
        let config = tls::server_config(identity, &ca).map_err(Failure::input)?;
        Ok(Some((config, self.peer())))
    }

    /// The client side's TLS, if enabled, presenting `host` for SNI.
    pub(crate) fn client(
        &self,
        host: &str,
    ) -> Result<Option<(std::sync::Arc<rustls::ClientConfig>, ServerName<'static>)>, Failure> {
        let Some((identity, ca)) = self.identity()? else {
            return Ok(None);
        };
        let config =
            tls::client_config(Some(identity), &ca, self.peer()).map_err(Failure::input)?;
        let name = ServerName::try_from(host.to_owned()).map_err(|error| {
            Failure::input(format!("{host:?} is not a valid TLS server name: {error}"))
        })?;
        Ok(Some((config, name)))
    }
}

/// Which wire formats a server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum WireChoice {
    /// Both, told apart from each connection's first byte.
    Auto,
    /// Go's encoding/gob only.
    Gob,
    /// The native format only.
    Native,
}

impl WireChoice {
    /// The format a server requires (`None`: either).
    pub(crate) fn format(self) -> Option<WireFormat> {
        match self {
            WireChoice::Auto => None,
            WireChoice::Gob => Some(WireFormat::Gob),
            WireChoice::Native => Some(WireFormat::Native),
        }
    }
}

/// A wire format named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Wire {
    /// Go's encoding/gob, as upstream Typha and Felix speak.
    Gob,
    /// This crate's postcard-based format.
    Native,
}

impl From<Wire> for WireFormat {
    fn from(wire: Wire) -> WireFormat {
        match wire {
            Wire::Gob => WireFormat::Gob,
            Wire::Native => WireFormat::Native,
        }
    }
}

/// The host part of `host:port` (brackets removed for IPv6).
pub(crate) fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}
