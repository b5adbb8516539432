import COpenSSL

/// HMAC-SHA256 (RFC 2104) with one OpenSSL `EVP_MAC` context per key, reinitialised (not
/// rebuilt) for every code. Not safe for concurrent use; see ``CipherSuite``.
public final class HMACSHA256 {
    /// Bytes of a code.
    public static let codeBytes = 32
    private let context: OpaquePointer

    /// A keyed HMAC-SHA256.
    public init(key: [UInt8]) throws(CryptoError) {
        guard let context = cohort_hmac_new() else { throw OpenSSL.lastError("EVP_MAC HMAC") }
        self.context = context
        guard cohort_hmac_sha256_init(context, key, key.count) == 1 else { throw OpenSSL.lastError("HMAC init") }
    }

    deinit { EVP_MAC_CTX_free(context) }

    /// The code of the concatenation of `parts`.
    public func code(_ parts: [UInt8]...) -> [UInt8] {
        code(parts: parts)
    }

    /// The code of the concatenation of `parts`.
    public func code(parts: [[UInt8]]) -> [UInt8] {
        reinitialise()
        for part in parts where !part.isEmpty {
            _ = part.withUnsafeBufferPointer { EVP_MAC_update(context, $0.baseAddress, $0.count) }
        }
        return finish()
    }

    /// The code of the concatenation of raw `parts` (no copies).
    func code(raw parts: [UnsafeRawBufferPointer]) -> [UInt8] {
        reinitialise()
        for part in parts where part.count > 0 {
            _ = EVP_MAC_update(context, part.bindMemory(to: UInt8.self).baseAddress, part.count)
        }
        return finish()
    }

    /// Starts a new code with the key already set: no key schedule per code.
    private func reinitialise() {
        guard EVP_MAC_init(context, nil, 0, nil) == 1 else {
            preconditionFailure("HMAC reinit failed: \(OpenSSL.lastError("EVP_MAC_init"))")
        }
    }

    private func finish() -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Self.codeBytes)
        var length = 0
        let ok = output.withUnsafeMutableBufferPointer { EVP_MAC_final(context, $0.baseAddress, &length, Self.codeBytes) }
        precondition(ok == 1 && length == Self.codeBytes, "HMAC final failed")
        return output
    }
}

/// HKDF with SHA-256 (RFC 5869), for turning an agreed group secret into cipher keys.
public enum HKDF {
    /// Extracts from `inputKeyMaterial` with `salt` and expands with `info` into `outputBytes`
    /// bytes (at most 255 × 32).
    public static func sha256(inputKeyMaterial: [UInt8], salt: [UInt8] = [], info: [UInt8], outputBytes: Int) throws(CryptoError) -> [UInt8] {
        guard outputBytes > 0, outputBytes <= 255 * 32 else { throw .backendFailure("HKDF output length \(outputBytes) out of range") }
        var output = [UInt8](repeating: 0, count: outputBytes)
        let ok = output.withUnsafeMutableBufferPointer { out in
            cohort_hkdf_sha256(inputKeyMaterial, inputKeyMaterial.count, salt, salt.count, info, info.count, out.baseAddress, outputBytes)
        }
        guard ok == 1 else { throw OpenSSL.lastError("HKDF") }
        return output
    }

    /// Key material for `suite` from a group secret: HKDF-SHA256 with the suite's name and
    /// `context` (for example the view id) as info, so different suites and views never share
    /// key material.
    public static func keyMaterial(for suite: any CipherSuite.Type, secret: [UInt8], context: [UInt8] = []) throws(CryptoError) -> [UInt8] {
        try sha256(inputKeyMaterial: secret, info: Array("cohort/\(suite.name)/".utf8) + context, outputBytes: suite.keyMaterialBytes)
    }
}
