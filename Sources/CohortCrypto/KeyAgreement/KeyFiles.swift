import Foundation

/// Ed25519 key files: PEM-style armour around the base64 of the raw 32-byte key.
///
/// ```
/// -----BEGIN COHORT ED25519 PRIVATE KEY-----
/// <base64 of the 32-byte seed>
/// -----END COHORT ED25519 PRIVATE KEY-----
/// ```
///
/// and the same with `PUBLIC KEY` for the public half, which is what a member directory lists.
/// A private key file is written with mode 0600 and refused when others can read it.
public enum KeyFiles {
    /// A key file that cannot be used.
    public enum KeyFileError: Error, Hashable, Sendable, CustomStringConvertible {
        /// The file could not be read or written.
        case io(path: String, reason: String)
        /// The armour is missing or names another kind of key.
        case notAKeyFile(path: String, expected: String)
        /// The body is not base64 of 32 bytes.
        case badKey(path: String)
        /// A private key file readable by group or others.
        case insecurePermissions(path: String, mode: Int)

        public var description: String {
            switch self {
            case .io(let path, let reason): "\(path): \(reason)"
            case .notAKeyFile(let path, let expected): "\(path): not a \(expected) file"
            case .badKey(let path): "\(path): the key is not base64 of 32 bytes"
            case .insecurePermissions(let path, let mode): "\(path): private key readable by others (mode \(String(mode, radix: 8))); chmod 600"
            }
        }
    }

    static let privateLabel = "COHORT ED25519 PRIVATE KEY"
    static let publicLabel = "COHORT ED25519 PUBLIC KEY"

    /// The armoured text of `bytes` under `label`.
    static func armour(_ bytes: [UInt8], label: String) -> String {
        "-----BEGIN \(label)-----\n\(Data(bytes).base64EncodedString())\n-----END \(label)-----\n"
    }

    /// The 32 key bytes inside armoured `text` labelled `label`.
    static func dearmour(_ text: String, label: String, path: String) throws(KeyFileError) -> [UInt8] {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard lines.count == 3, lines[0] == "-----BEGIN \(label)-----", lines[2] == "-----END \(label)-----" else {
            throw .notAKeyFile(path: path, expected: label)
        }
        guard let data = Data(base64Encoded: lines[1]), data.count == 32 else { throw .badKey(path: path) }
        return Array(data)
    }

    /// Writes `key`: the private half to `privatePath` (mode 0600), the public half to `publicPath`.
    public static func write(_ key: SigningKey, privatePath: String, publicPath: String) throws(KeyFileError) {
        let manager = FileManager.default
        guard manager.createFile(atPath: privatePath, contents: Data(armour(key.privateKeyBytes, label: privateLabel).utf8),
                                 attributes: [.posixPermissions: 0o600]) else {
            throw .io(path: privatePath, reason: "cannot create")
        }
        guard manager.createFile(atPath: publicPath, contents: Data(armour(key.publicKeyBytes, label: publicLabel).utf8),
                                 attributes: [.posixPermissions: 0o644]) else {
            throw .io(path: publicPath, reason: "cannot create")
        }
    }

    /// Reads a private key file; refuses one that group or others can read.
    public static func readPrivateKey(path: String) throws(KeyFileError) -> SigningKey {
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: path)
        } catch {
            throw .io(path: path, reason: error.localizedDescription)
        }
        let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0
        guard mode & 0o077 == 0 else { throw .insecurePermissions(path: path, mode: mode) }
        let bytes = try dearmour(try read(path), label: privateLabel, path: path)
        do {
            return try SigningKey(privateKeyBytes: bytes)
        } catch {
            throw .badKey(path: path)
        }
    }

    /// Reads a public key file (32 raw bytes, for a ``MemberKeyDirectory``).
    public static func readPublicKey(path: String) throws(KeyFileError) -> [UInt8] {
        try dearmour(try read(path), label: publicLabel, path: path)
    }

    private static func read(_ path: String) throws(KeyFileError) -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .io(path: path, reason: error.localizedDescription)
        }
    }
}
