import COpenSSL

/// An OpenSSL EVP AEAD (96-bit nonce, 128-bit tag) keyed once: one context for sealing and one
/// for opening, each initialised with the key at creation; a message only sets the nonce.
final class EVPAEAD {
    static let tagBytes = 16
    private let sealContext: OpaquePointer
    private let openContext: OpaquePointer

    init(cipher: OpaquePointer, key: [UInt8]) throws(CryptoError) {
        guard let sealContext = EVP_CIPHER_CTX_new(), let openContext = EVP_CIPHER_CTX_new() else {
            throw OpenSSL.lastError("EVP_CIPHER_CTX_new")
        }
        self.sealContext = sealContext
        self.openContext = openContext
        guard EVP_EncryptInit_ex(sealContext, cipher, nil, key, nil) == 1,
              EVP_DecryptInit_ex(openContext, cipher, nil, key, nil) == 1
        else { throw OpenSSL.lastError("cipher init") }
    }

    deinit {
        EVP_CIPHER_CTX_free(sealContext)
        EVP_CIPHER_CTX_free(openContext)
    }

    func seal(
        _ plaintext: UnsafeRawBufferPointer, nonce: Nonce, associatedData: UnsafeRawBufferPointer,
        into output: inout [UInt8]
    ) throws(CryptoError) {
        guard plaintext.count <= Int(Int32.max) - Self.tagBytes, associatedData.count <= Int(Int32.max) else {
            throw .backendFailure("message too large for one seal")
        }
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: plaintext.count + Self.tagBytes))
        let ok = output.withUnsafeMutableBytes { out -> Bool in
            let ciphertext = out.baseAddress!.advanced(by: start).assumingMemoryBound(to: UInt8.self)
            var length: Int32 = 0
            guard EVP_EncryptInit_ex(sealContext, nil, nil, nil, nonce.bytes) == 1 else { return false }
            if associatedData.count > 0 {
                guard EVP_EncryptUpdate(sealContext, nil, &length, associatedData.bindMemory(to: UInt8.self).baseAddress,
                                        Int32(associatedData.count)) == 1 else { return false }
            }
            var written: Int32 = 0
            if plaintext.count > 0 {
                guard EVP_EncryptUpdate(sealContext, ciphertext, &written, plaintext.bindMemory(to: UInt8.self).baseAddress,
                                        Int32(plaintext.count)) == 1 else { return false }
            }
            var final: Int32 = 0
            guard EVP_EncryptFinal_ex(sealContext, ciphertext.advanced(by: Int(written)), &final) == 1 else { return false }
            return EVP_CIPHER_CTX_ctrl(sealContext, EVP_CTRL_AEAD_GET_TAG, Int32(Self.tagBytes),
                                       ciphertext.advanced(by: plaintext.count)) == 1
        }
        guard ok else {
            output.removeSubrange(start...)
            throw OpenSSL.lastError("seal")
        }
    }

    func open(
        _ sealed: UnsafeRawBufferPointer, nonce: Nonce, associatedData: UnsafeRawBufferPointer
    ) throws(CryptoError) -> [UInt8] {
        guard sealed.count >= Self.tagBytes else { throw .truncated(neededBytes: Self.tagBytes, gotBytes: sealed.count) }
        guard sealed.count <= Int(Int32.max), associatedData.count <= Int(Int32.max) else { throw .authenticationFailed }
        let ciphertextCount = sealed.count - Self.tagBytes
        var tag = Array(sealed[ciphertextCount...])
        var plaintext = [UInt8](repeating: 0, count: ciphertextCount)
        let ok = plaintext.withUnsafeMutableBufferPointer { out -> Bool in
            var length: Int32 = 0
            guard EVP_DecryptInit_ex(openContext, nil, nil, nil, nonce.bytes) == 1 else { return false }
            if associatedData.count > 0 {
                guard EVP_DecryptUpdate(openContext, nil, &length, associatedData.bindMemory(to: UInt8.self).baseAddress,
                                        Int32(associatedData.count)) == 1 else { return false }
            }
            var written: Int32 = 0
            if ciphertextCount > 0 {
                guard EVP_DecryptUpdate(openContext, out.baseAddress, &written, sealed.bindMemory(to: UInt8.self).baseAddress,
                                        Int32(ciphertextCount)) == 1 else { return false }
            }
            guard EVP_CIPHER_CTX_ctrl(openContext, EVP_CTRL_AEAD_SET_TAG, Int32(Self.tagBytes), &tag) == 1 else { return false }
            var final: Int32 = 0
            // Verifies the tag; fails on any mismatch.
            return EVP_DecryptFinal_ex(openContext, out.baseAddress.map { $0.advanced(by: Int(written)) } ?? nil, &final) == 1
        }
        guard ok else {
            ERR_clear_error()
            throw .authenticationFailed
        }
        return plaintext
    }
}

/// A cipher suite that is one EVP AEAD: sealing and opening forward to it.
protocol EVPAEADSuite: CipherSuite {
    var aead: EVPAEAD { get }
}

extension EVPAEADSuite {
    public func seal(_ plaintext: UnsafeRawBufferPointer, nonce: Nonce, associatedData: UnsafeRawBufferPointer, into output: inout [UInt8]) throws(CryptoError) {
        try aead.seal(plaintext, nonce: nonce, associatedData: associatedData, into: &output)
    }

    public func open(_ sealed: UnsafeRawBufferPointer, nonce: Nonce, associatedData: UnsafeRawBufferPointer) throws(CryptoError) -> [UInt8] {
        try aead.open(sealed, nonce: nonce, associatedData: associatedData)
    }

    /// The AEAD `cipher` keyed with `keyMaterial`, after checking its length.
    static func makeAEAD(cipher: OpaquePointer, keyMaterial: [UInt8]) throws(CryptoError) -> EVPAEAD {
        guard keyMaterial.count == keyMaterialBytes else {
            throw .invalidKeyLength(expected: keyMaterialBytes, got: keyMaterial.count)
        }
        return try EVPAEAD(cipher: cipher, key: keyMaterial)
    }
}

/// AES-256-GCM (NIST SP 800-38D) through OpenSSL EVP: the default suite.
public final class AES256GCM: CipherSuite, EVPAEADSuite {
    public static let name = "aes-256-gcm"
    public static let keyMaterialBytes = 32
    public static let overheadBytesMax = EVPAEAD.tagBytes
    let aead: EVPAEAD

    public init(keyMaterial: [UInt8]) throws(CryptoError) {
        aead = try Self.makeAEAD(cipher: EVP_aes_256_gcm(), keyMaterial: keyMaterial)
    }
}

/// ChaCha20-Poly1305 (RFC 8439) through OpenSSL EVP.
public final class ChaCha20Poly1305: CipherSuite, EVPAEADSuite {
    public static let name = "chacha20-poly1305"
    public static let keyMaterialBytes = 32
    public static let overheadBytesMax = EVPAEAD.tagBytes
    let aead: EVPAEAD

    public init(keyMaterial: [UInt8]) throws(CryptoError) {
        aead = try Self.makeAEAD(cipher: EVP_chacha20_poly1305(), keyMaterial: keyMaterial)
    }
}
