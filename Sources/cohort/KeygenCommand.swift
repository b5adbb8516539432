import ArgumentParser
import CohortCrypto
import Foundation

/// `cohort keygen`: makes a daemon's Ed25519 key for daemon authentication.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make a daemon's Ed25519 key pair for daemon authentication.",
        discussion: """
            Writes the private key to --out (mode 0600) and the public key to --out.pub, and \
            prints the line to put in the daemon's entry of the configuration file. Give every \
            daemon of the configuration a publicKey and its own privateKeyFile \
            (docs/daemon-authentication.md).
            """)

    @Option(help: "The private key file to write (the public key goes to FILE.pub).")
    var out: String

    @Flag(help: "Replace an existing key file.")
    var force = false

    func run() throws {
        guard force || !FileManager.default.fileExists(atPath: out) else {
            throw ValidationError("\(out) exists; --force replaces it (and the daemon's identity with it)")
        }
        let key = SigningKey.generate()
        do {
            try KeyFiles.write(key, privatePath: out, publicPath: out + ".pub")
        } catch {
            throw ValidationError("\(error)")
        }
        print("publicKey: \(Data(key.publicKeyBytes).base64EncodedString())")
        print("privateKeyFile: \(out)")
    }
}
