//! A throwaway certificate authority and a leaf for `localhost` / `127.0.0.1`, made fresh for every
//! emulator (rcgen, ECDSA P-256), and the rustls server configuration using them. The `ring`
//! provider is always passed explicitly: the process-wide default may be unset or ambiguous.

use std::io;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The CA clients should trust and the acceptor that serves the leaf.
pub(crate) struct TlsMaterial {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) ca_der: Vec<u8>,
    pub(crate) ca_pem: String,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("emulator TLS setup: {e}"))
}

pub(crate) fn generate() -> io::Result<TlsMaterial> {
    let ca_key = KeyPair::generate().map_err(other)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "smallest-emulator local CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(other)?;
    let issuer = Issuer::from_params(&ca, &ca_key);

    let leaf_key = KeyPair::generate().map_err(other)?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(other)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "smallest-emulator");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(other)?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone()];
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(other)?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(other)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    Ok(TlsMaterial {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        ca_der: ca_cert.der().to_vec(),
        ca_pem: ca_cert.pem(),
    })
}
