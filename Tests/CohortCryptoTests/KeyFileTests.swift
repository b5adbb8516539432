import Foundation
import Testing
@testable import CohortCrypto

@Suite("Key files")
struct KeyFileTests {
    func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-keys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("a written key pair reads back, and signs what its public key verifies")
    func roundTrip() throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = SigningKey.generate()
        let privatePath = dir.appendingPathComponent("d1.key").path
        let publicPath = dir.appendingPathComponent("d1.pub").path
        try KeyFiles.write(key, privatePath: privatePath, publicPath: publicPath)
        let mode = try FileManager.default.attributesOfItem(atPath: privatePath)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        let loaded = try KeyFiles.readPrivateKey(path: privatePath)
        #expect(loaded.privateKeyBytes == key.privateKeyBytes)
        let publicKey = try KeyFiles.readPublicKey(path: publicPath)
        #expect(publicKey == key.publicKeyBytes)
        let message = Array("hello".utf8)
        #expect(SigningKey.isValid(signature: try loaded.signature(for: message), for: message, publicKey: publicKey))
        #expect(!SigningKey.isValid(signature: try loaded.signature(for: message), for: message + [0], publicKey: publicKey))
    }

    @Test("wrong armour, bad base64, wrong length, swapped files and loose permissions are typed errors")
    func errors() throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = SigningKey.generate()
        let privatePath = dir.appendingPathComponent("k").path
        let publicPath = dir.appendingPathComponent("p").path
        try KeyFiles.write(key, privatePath: privatePath, publicPath: publicPath)
        // A public key file is not a private key file, and the other way round.
        #expect(throws: KeyFiles.KeyFileError.notAKeyFile(path: privatePath, expected: KeyFiles.publicLabel)) {
            try KeyFiles.readPublicKey(path: privatePath)
        }
        let bad = dir.appendingPathComponent("bad").path
        for body in ["-----BEGIN COHORT ED25519 PUBLIC KEY-----\n!!!\n-----END COHORT ED25519 PUBLIC KEY-----\n",
                     "-----BEGIN COHORT ED25519 PUBLIC KEY-----\nAAAA\n-----END COHORT ED25519 PUBLIC KEY-----\n"] {
            try body.write(toFile: bad, atomically: true, encoding: .utf8)
            #expect(throws: KeyFiles.KeyFileError.badKey(path: bad)) { try KeyFiles.readPublicKey(path: bad) }
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: privatePath)
        #expect(throws: KeyFiles.KeyFileError.insecurePermissions(path: privatePath, mode: 0o644)) { try KeyFiles.readPrivateKey(path: privatePath) }
        #expect(throws: KeyFiles.KeyFileError.self) { try KeyFiles.readPrivateKey(path: dir.appendingPathComponent("missing").path) }
    }
}
