import COpenSSL

/// Blowfish-CBC with HMAC-SHA256, encrypt-then-MAC: the source system's cipher, kept for
/// fidelity of the reproduced experiments. Prefer AES-256-GCM for anything else.
///
/// Key material: 16 bytes Blowfish key, then 32 bytes HMAC key. The CBC IV is the first 8
/// bytes of HMAC(macKey, 0x00 ‖ nonce): unique per nonce and unpredictable without the key
/// (predictable CBC IVs are attackable). The tag is HMAC(macKey, 0x01 ‖ len(ad) ‖ ad ‖ nonce ‖
/// ciphertext), checked in constant time before anything is decrypted. OpenSSL 3 serves
/// Blowfish only from its `legacy` provider, loaded (with `default`) on first use.
public final class BlowfishCBCHMACSHA256: CipherSuite {
    public static let name = "blowfish-cbc-hmac-sha256"
    public static let keyMaterialBytes = 16 + HMACSHA256.codeBytes
    public static let overheadBytesMax = 8 + HMACSHA256.codeBytes
    private static let blockBytes = 8

    private let sealContext: OpaquePointer
    private let openContext: OpaquePointer
    private let mac: HMACSHA256

    public init(keyMaterial: [UInt8]) throws(CryptoError) {
        guard keyMaterial.count == Self.keyMaterialBytes else {
            throw .invalidKeyLength(expected: Self.keyMaterialBytes, got: keyMaterial.count)
        }
        guard OpenSSL.legacyProvidersLoaded, let cipher = EVP_CIPHER_fetch(nil, "BF-CBC", nil) else {
            throw OpenSSL.lastError("BF-CBC (legacy provider)")
        }
        defer { EVP_CIPHER_free(cipher) }
        guard let sealContext = EVP_CIPHER_CTX_new(), let openContext = EVP_CIPHER_CTX_new() else {
            throw OpenSSL.lastError("EVP_CIPHER_CTX_new")
        }
        self.sealContext = sealContext
        self.openContext = openContext
        let key = Array(keyMaterial.prefix(16))
        // Blowfish takes a variable key: fix it at 16 bytes before setting it.
        guard EVP_EncryptInit_ex(sealContext, cipher, nil, nil, nil) == 1,
              EVP_CIPHER_CTX_set_key_length(sealContext, 16) == 1,
              EVP_EncryptInit_ex(sealContext, nil, nil, key, nil) == 1,
              EVP_DecryptInit_ex(openContext, cipher, nil, nil, nil) == 1,
              EVP_CIPHER_CTX_set_key_length(openContext, 16) == 1,
              EVP_DecryptInit_ex(openContext, nil, nil, key, nil) == 1
        else { throw OpenSSL.lastError("BF-CBC init") }
        mac = try HMACSHA256(key: Array(keyMaterial.suffix(HMACSHA256.codeBytes)))
    }

    deinit {
        EVP_CIPHER_CTX_free(sealContext)
        EVP_CIPHER_CTX_free(openContext)
    }

    private func iv(for nonce: Nonce) -> [UInt8] {
        Array(mac.code([0x00], nonce.bytes).prefix(Self.blockBytes))
    }

    private func tag(associatedData: UnsafeRawBufferPointer, nonce: Nonce, ciphertext: UnsafeRawBufferPointer) -> [UInt8] {
        var header: [UInt8] = [0x01]
        withUnsafeBytes(of: UInt64(associatedData.count).bigEndian) { header.append(contentsOf: $0) }
        let nonceBytes = nonce.bytes
        return header.withUnsafeBytes { header in
            nonceBytes.withUnsafeBytes { nonceBytes in
                mac.code(raw: [header, associatedData, nonceBytes, ciphertext])
            }
        }
    }

    public func seal(
        _ plaintext: UnsafeRawBufferPointer, nonce: Nonce, associatedData: UnsafeRawBufferPointer,
        into output: inout [UInt8]
    ) throws(CryptoError) {
        guard plaintext.count <= Int(Int32.max) - Self.overheadBytesMax else { throw .backendFailure("message too large for one seal") }
        let start = output.count
        let paddedCount = (plaintext.count / Self.blockBytes + 1) * Self.blockBytes
        output.append(contentsOf: repeatElement(0, count: paddedCount))
        let iv = iv(for: nonce)
        let ok = output.withUnsafeMutableBytes { out -> Bool in
            let ciphertext = out.baseAddress!.advanced(by: start).assumingMemoryBound(to: UInt8.self)
            guard EVP_EncryptInit_ex(sealContext, nil, nil, nil, iv) == 1 else { return false }
            var written: Int32 = 0
            if plaintext.count > 0 {
                guard EVP_EncryptUpdate(sealContext, ciphertext, &written, plaintext.bindMemory(to: UInt8.self).baseAddress,
                                        Int32(plaintext.count)) == 1 else { return false }
            }
            var final: Int32 = 0
            guard EVP_EncryptFinal_ex(sealContext, ciphertext.advanced(by: Int(written)), &final) == 1 else { return false }
            return Int(written + final) == paddedCount
        }
        guard ok else {
            output.removeSubrange(start...)
            throw OpenSSL.lastError("BF-CBC seal")
        }
        let code = output.withUnsafeBytes { out in
            tag(associatedData: associatedData, nonce: nonce, ciphertext: UnsafeRawBufferPointer(rebasing: out[start...]))
        }
        output.append(contentsOf: code)
    }

    public func open(
        _ sealed: UnsafeRawBufferPointer, nonce: Nonce, associatedData: UnsafeRawBufferPointer
    ) throws(CryptoError) -> [UInt8] {
        let minimum = Self.blockBytes + HMACSHA256.codeBytes
        guard sealed.count >= minimum else { throw .truncated(neededBytes: minimum, gotBytes: sealed.count) }
        let ciphertextCount = sealed.count - HMACSHA256.codeBytes
        guard ciphertextCount % Self.blockBytes == 0, sealed.count <= Int(Int32.max) else { throw .authenticationFailed }
        let ciphertext = UnsafeRawBufferPointer(rebasing: sealed[..<ciphertextCount])
        // 1. Verify first (encrypt-then-MAC): nothing is decrypted under a forged tag.
        let expected = tag(associatedData: associatedData, nonce: nonce, ciphertext: ciphertext)
        let verified = expected.withUnsafeBytes { OpenSSL.constantTimeEqual($0, UnsafeRawBufferPointer(rebasing: sealed[ciphertextCount...])) }
        guard verified else { throw .authenticationFailed }
        // 2. Decrypt.
        let iv = iv(for: nonce)
        var plaintext = [UInt8](repeating: 0, count: ciphertextCount)
        let count = plaintext.withUnsafeMutableBufferPointer { out -> Int? in
            guard EVP_DecryptInit_ex(openContext, nil, nil, nil, iv) == 1 else { return nil }
            var written: Int32 = 0
            guard EVP_DecryptUpdate(openContext, out.baseAddress, &written, ciphertext.bindMemory(to: UInt8.self).baseAddress,
                                    Int32(ciphertextCount)) == 1 else { return nil }
            var final: Int32 = 0
            guard EVP_DecryptFinal_ex(openContext, out.baseAddress!.advanced(by: Int(written)), &final) == 1 else { return nil }
            return Int(written + final)
        }
        guard let count else {
            ERR_clear_error()
            throw .authenticationFailed
        }
        plaintext.removeSubrange(count...)
        return plaintext
    }
}
