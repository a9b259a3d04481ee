import AuditLog
import CaduceusCore
import ControlPlane
import Crypto
import Foundation
import HTTPTypes
import Sealing
import SwiftASN1
import X509

/// The control plane's own certificate authority, in `<data>/tls/`: it signs the server certificate and the
/// client certificates of node agents. Keys are P-256 and kept with mode 0600.
public struct InternalCA: Sendable {
    /// The CA certificate, PEM.
    public let caCertificatePEM: String
    /// The server certificate chain (server, CA), PEM.
    public let serverChainPEM: String
    /// The server's private key, PEM.
    public let serverKeyPEM: String
    /// The CA certificate's path.
    public let caCertificatePath: String
    /// SHA-256 of the CA certificate's DER, colon-separated hex.
    public let caFingerprint: String
    let caCertificate: Certificate
    let caKey: P256.Signing.PrivateKey

    /// Loads the CA and server certificate from `directory`, creating what is missing; the server
    /// certificate is renewed when it expires within 30 days or lacks one of `hostNames`.
    public static func loadOrCreate(directory: String, hostNames: [String], now: Date = Date()) throws -> InternalCA {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let caCertPath = directory + "/ca.pem"
        let caKeyPath = directory + "/ca.key"
        let (caCert, caKey) = try loadPair(certificate: caCertPath, key: caKeyPath) ?? createCA(now: now)
        if !FileManager.default.fileExists(atPath: caCertPath) {
            try write(caKey.pemRepresentation, to: caKeyPath, mode: 0o600)
            try write(try caCert.serializeAsPEM().pemString, to: caCertPath, mode: 0o644)
        }
        let serverCertPath = directory + "/server.pem"
        let serverKeyPath = directory + "/server.key"
        var server = try loadPair(certificate: serverCertPath, key: serverKeyPath)
        if let (certificate, _) = server, !isCurrent(certificate, hostNames: hostNames, issuer: caCert, now: now) {
            server = nil
        }
        if server == nil {
            let issued = try issueServer(hostNames: hostNames, caCert: caCert, caKey: caKey, now: now)
            try write(issued.1.pemRepresentation, to: serverKeyPath, mode: 0o600)
            try write(try issued.0.serializeAsPEM().pemString, to: serverCertPath, mode: 0o644)
            server = issued
        }
        guard let (serverCert, serverKey) = server else { throw CaduceusError(code: "tls", message: "no server key") }
        let caPEM = try caCert.serializeAsPEM().pemString
        return InternalCA(
            caCertificatePEM: caPEM, serverChainPEM: try serverCert.serializeAsPEM().pemString + "\n" + caPEM,
            serverKeyPEM: serverKey.pemRepresentation, caCertificatePath: caCertPath,
            caFingerprint: try fingerprint(caCert), caCertificate: caCert, caKey: caKey)
    }

    /// SHA-256 of a certificate's DER, as `AB:CD:…`.
    public static func fingerprint(_ certificate: Certificate) throws -> String {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return SHA256.hash(data: serializer.serializedBytes).map { byte in
            let hex = String(byte, radix: 16, uppercase: true)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }

    static func loadPair(certificate: String, key: String) throws -> (Certificate, P256.Signing.PrivateKey)? {
        guard FileManager.default.fileExists(atPath: certificate), FileManager.default.fileExists(atPath: key) else {
            return nil
        }
        do {
            let cert = try Certificate(pemEncoded: try String(contentsOfFile: certificate, encoding: .utf8))
            let privateKey = try P256.Signing.PrivateKey(
                pemRepresentation: try String(contentsOfFile: key, encoding: .utf8))
            return (cert, privateKey)
        } catch {
            throw CaduceusError(code: "tls.load", message: "cannot read \(certificate) and its key", underlying: error)
        }
    }

    static func createCA(now: Date) throws -> (Certificate, P256.Signing.PrivateKey) {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            OrganizationName("Caduceus")
            CommonName("Caduceus internal CA")
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(10 * 365 * 86_400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 1))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(key.publicKey))
            }, issuerPrivateKey: .init(key))
        return (certificate, key)
    }

    static func issueServer(
        hostNames: [String], caCert: Certificate, caKey: P256.Signing.PrivateKey, now: Date
    ) throws -> (Certificate, P256.Signing.PrivateKey) {
        let key = P256.Signing.PrivateKey()
        var names: [GeneralName] = []
        for host in hostNames {
            if let address = ipv4(host) {
                names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(address))))
            } else {
                names.append(.dnsName(host))
            }
        }
        let subjectNames = names
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(365 * 86_400),
            issuer: caCert.subject,
            subject: try DistinguishedName {
                OrganizationName("Caduceus")
                CommonName(hostNames.first ?? "localhost")
            }, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(subjectNames)
            }, issuerPrivateKey: .init(caKey))
        return (certificate, key)
    }

    static func isCurrent(_ certificate: Certificate, hostNames: [String], issuer: Certificate, now: Date) -> Bool {
        guard certificate.issuer == issuer.subject, certificate.notValidAfter > now.addingTimeInterval(30 * 86_400),
            let names = try? certificate.extensions.subjectAlternativeNames
        else { return false }
        var dns = Set<String>()
        var ips = Set<[UInt8]>()
        for name in names {
            switch name {
            case .dnsName(let value): dns.insert(value)
            case .ipAddress(let value): ips.insert(Array(value.bytes))
            default: break
            }
        }
        return hostNames.allSatisfy { host in ipv4(host).map { ips.contains($0) } ?? dns.contains(host) }
    }

    static func ipv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { UInt8($0) }
        return bytes.count == 4 ? bytes : nil
    }

    static func write(_ text: String, to path: String, mode: Int) throws {
        try SecureFile.write(Array(text.utf8), to: path, mode: mode_t(mode))
    }
}

extension InternalCA: NodeCertificateIssuer {
    public var caDigestHex: String { caFingerprint.replacingOccurrences(of: ":", with: "").lowercased() }

    /// Signs a node agent's client certificate: subject `CN=<node ID>`, client authentication only, valid for
    /// `days`. The request must be a PEM PKCS #10 request for a P-256 key, signed by that key.
    public func issueNodeCertificate(
        csrPEM: String, node: NodeID, days: Int, now: Timestamp
    ) throws -> IssuedCertificate {
        let request: CertificateSigningRequest
        do {
            request = try CertificateSigningRequest(pemEncoded: csrPEM)
        } catch {
            throw CaduceusError(
                code: "input.invalid", message: "certificateSigningRequest: not a PEM certificate signing request")
        }
        guard P256.Signing.PublicKey(request.publicKey) != nil else {
            throw CaduceusError(code: "input.invalid", message: "certificateSigningRequest: the key must be P-256")
        }
        guard request.publicKey.isValidSignature(request.signature, for: request) else {
            throw CaduceusError(
                code: "input.invalid", message: "certificateSigningRequest: its signature does not verify")
        }
        let start = Date(timeIntervalSince1970: Double(now.millisecondsSinceEpoch) / 1000)
        let end = start.addingTimeInterval(Double(days) * 86_400)
        let serial = Certificate.SerialNumber()
        let certificate = try Certificate(
            version: .v3, serialNumber: serial, publicKey: request.publicKey,
            notValidBefore: start.addingTimeInterval(-300), notValidAfter: end, issuer: caCertificate.subject,
            subject: try DistinguishedName {
                OrganizationName("Caduceus")
                OrganizationalUnitName("node agents")
                CommonName(node.rawValue)
            }, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth])
            }, issuerPrivateKey: .init(caKey))
        return IssuedCertificate(
            chainPEM: try certificate.serializeAsPEM().pemString + "\n" + caCertificatePEM,
            serial: Hex.encode(serial.bytes),
            expiresAt: Timestamp(millisecondsSinceEpoch: Int64(end.timeIntervalSince1970 * 1000)))
    }
}
