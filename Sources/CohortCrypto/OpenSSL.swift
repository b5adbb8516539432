import COpenSSL

/// Small helpers over libcrypto.
enum OpenSSL {
    /// The library's last error, as text, clearing the error queue.
    static func lastError(_ context: String) -> CryptoError {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return .backendFailure(context) }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        let message = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return .backendFailure("\(context): \(message)")
    }

    /// Loads the `legacy` and `default` providers once (Blowfish lives in `legacy`).
    static let legacyProvidersLoaded: Bool = cohort_load_legacy_and_default_providers() == 1

    /// Constant-time equality of two byte sequences of equal length.
    static func constantTimeEqual(_ lhs: UnsafeRawBufferPointer, _ rhs: UnsafeRawBufferPointer) -> Bool {
        guard lhs.count == rhs.count else { return false }
        guard lhs.count > 0 else { return true }
        return CRYPTO_memcmp(lhs.baseAddress, rhs.baseAddress, lhs.count) == 0
    }
}

/// `body` over the bytes of `bytes`, keeping the typed error (`withUnsafeBytes` only rethrows
/// untyped errors).
func withBytes<Result>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(CryptoError) -> Result) throws(CryptoError) -> Result {
    let result: Swift.Result<Result, CryptoError> = bytes.withUnsafeBytes { raw in
        Swift.Result { () throws(CryptoError) in try body(raw) }
    }
    return try result.get()
}
