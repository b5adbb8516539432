import COpenSSL
import Crypto
import Foundation

/// SCRAM-SHA-256 (RFC 5802 with the SHA-256 instantiation of RFC 7677), without channel
/// binding: a password challenge-response in which the password never travels, a captured
/// exchange cannot be replayed (both sides contribute a fresh nonce), the server stores only
/// a salted, iterated verifier, and the client checks the server's knowledge of that verifier
/// too (mutual authentication).
///
/// Four messages, as text:
///
///     client-first  n,,n=USER,r=CNONCE
///     server-first  r=CNONCE SNONCE,s=SALT,i=ITERATIONS
///     client-final  c=biws,r=CNONCE SNONCE,p=PROOF
///     server-final  v=SERVER-SIGNATURE
///
/// ``Client`` and ``Server`` are pure state machines: they take a message and return the next
/// one; the transport (the connect handshake) carries them. Nonces come from the caller, so
/// tests are deterministic and the sans-IO cores stay free of randomness sources.
public enum SCRAM {
    /// The mechanism name, as negotiated.
    public static let mechanism = "SCRAM-SHA-256"
    /// Iterations for new verifiers (RFC 7677 asks for at least 4096; the cost is the
    /// attacker's per guess).
    public static let defaultIterations = 100_000
    /// Fewest iterations a server accepts in a verifier.
    public static let minimumIterations = 4096

    /// Why an exchange failed. A wrong password and an unknown user are the same failure to
    /// the client: the server does not tell which.
    public enum Failure: Error, Hashable, Sendable, CustomStringConvertible {
        /// A message that does not follow the grammar of RFC 5802 §7.
        case malformed(String)
        /// The client asked for channel binding, which this transport does not offer.
        case channelBindingUnsupported
        /// The server's nonce does not extend the client's, or the final message changed it.
        case nonceMismatch
        /// The proof did not verify: wrong password or unknown user.
        case authenticationFailed
        /// The server's signature did not verify: it does not hold this user's verifier.
        case serverNotAuthenticated
        /// The server asked for fewer iterations than ``minimumIterations``.
        case weakParameters(iterations: Int)
        /// A message arrived out of turn.
        case unexpectedMessage

        public var description: String {
            switch self {
            case .malformed(let why): "malformed SCRAM message: \(why)"
            case .channelBindingUnsupported: "SCRAM channel binding is not supported on this connection"
            case .nonceMismatch: "SCRAM nonce mismatch"
            case .authenticationFailed: "authentication failed: wrong user name or password"
            case .serverNotAuthenticated: "the server could not prove it knows the password verifier"
            case .weakParameters(let iterations): "the server asked for \(iterations) iterations; at least \(SCRAM.minimumIterations) are required"
            case .unexpectedMessage: "SCRAM message out of turn"
            }
        }
    }

    /// What a server stores for a user (RFC 5802 §3): never the password.
    public struct Verifier: Hashable, Sendable {
        /// The random salt of the password hash.
        public var salt: [UInt8]
        /// PBKDF2 iterations of the password hash.
        public var iterations: Int
        /// StoredKey = SHA-256(ClientKey): checks the client's proof.
        public var storedKey: [UInt8]
        /// ServerKey: signs the server's final message.
        public var serverKey: [UInt8]

        /// The verifier of `password` under `salt` (16 random bytes are usual).
        public init(password: String, salt: [UInt8], iterations: Int = SCRAM.defaultIterations) throws(CryptoError) {
            let salted = try SCRAM.saltedPassword(password, salt: salt, iterations: iterations)
            let keys = try SCRAM.keys(salted: salted)
            self.init(salt: salt, iterations: iterations, storedKey: keys.stored, serverKey: keys.server)
        }

        /// A verifier from its parts.
        public init(salt: [UInt8], iterations: Int, storedKey: [UInt8], serverKey: [UInt8]) {
            self.salt = salt
            self.iterations = iterations
            self.storedKey = storedKey
            self.serverKey = serverKey
        }

        /// `SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY` (base64 parts; the form
        /// PostgreSQL stores and RFC 5803 describes).
        public var encoded: String {
            "SCRAM-SHA-256$\(iterations):\(base64(salt))$\(base64(storedKey)):\(base64(serverKey))"
        }

        /// Parses ``encoded``.
        public init(encoded text: String) throws(Failure) {
            let parts = text.split(separator: "$", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "SCRAM-SHA-256" else { throw .malformed("a verifier starts with SCRAM-SHA-256$") }
            let first = parts[1].split(separator: ":", omittingEmptySubsequences: false)
            let second = parts[2].split(separator: ":", omittingEmptySubsequences: false)
            guard first.count == 2, second.count == 2, let iterations = Int(first[0]), iterations > 0,
                  let salt = unbase64(first[1]), let stored = unbase64(second[0]), let server = unbase64(second[1]),
                  stored.count == 32, server.count == 32
            else { throw .malformed("verifier: SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY with base64 parts") }
            self.init(salt: salt, iterations: iterations, storedKey: stored, serverKey: server)
        }
    }

    /// The client side of one exchange.
    public struct Client: Sendable {
        private enum State: Sendable {
            case start
            case sentFirst(bare: String)
            case sentFinal(expectedSignature: [UInt8])
            case done
        }
        private let username: String
        private let password: String
        private let nonce: String
        private var state = State.start

        /// A client for `username` with `password`; `nonce` must be fresh and unpredictable
        /// (e.g. 18 random bytes in base64), printable ASCII without commas.
        public init(username: String, password: String, nonce: String) {
            self.username = username
            self.password = password
            self.nonce = nonce
        }

        /// The client-first message.
        public mutating func firstMessage() -> String {
            let bare = "n=\(SCRAM.escape(username)),r=\(nonce)"
            state = .sentFirst(bare: bare)
            return "n,," + bare
        }

        /// Answers the server-first message with the client-final message.
        public mutating func finalMessage(answering serverFirst: String) throws -> String {
            guard case .sentFirst(let bare) = state else { throw Failure.unexpectedMessage }
            let fields = try SCRAM.attributes(serverFirst, expecting: ["r", "s", "i"])
            guard let combined = fields["r"], combined.hasPrefix(nonce), combined.count > nonce.count else { throw Failure.nonceMismatch }
            guard let salt = fields["s"].flatMap(unbase64), !salt.isEmpty else { throw Failure.malformed("salt") }
            guard let iterations = fields["i"].flatMap({ Int($0) }) else { throw Failure.malformed("iteration count") }
            guard iterations >= SCRAM.minimumIterations else { throw Failure.weakParameters(iterations: iterations) }
            let withoutProof = "c=biws,r=\(combined)"
            let authMessage = Array("\(bare),\(serverFirst),\(withoutProof)".utf8)
            let keys = try SCRAM.keys(salted: SCRAM.saltedPassword(password, salt: salt, iterations: iterations))
            let signature = try HMACSHA256(key: keys.stored).code(authMessage)
            let proof = zip(keys.client, signature).map { $0 ^ $1 }
            state = .sentFinal(expectedSignature: try HMACSHA256(key: keys.server).code(authMessage))
            return "\(withoutProof),p=\(base64(proof))"
        }

        /// Checks the server-final message: throws unless the server proved it holds the
        /// verifier (or if it reports an error, `e=...`).
        public mutating func verify(serverFinal: String) throws {
            guard case .sentFinal(let expected) = state else { throw Failure.unexpectedMessage }
            if serverFinal.hasPrefix("e=") { throw Failure.authenticationFailed }
            let fields = try SCRAM.attributes(serverFinal, expecting: ["v"])
            guard let signature = fields["v"].flatMap(unbase64), SCRAM.constantTimeEqual(signature, expected) else {
                throw Failure.serverNotAuthenticated
            }
            state = .done
        }
    }

    /// The server side of one exchange.
    public struct Server: Sendable {
        private enum State: Sendable {
            case start
            case sentFirst(user: String, verifier: Verifier?, bare: String, serverFirst: String, nonce: String)
            case done(user: String)
        }
        private let nonce: String
        private let decoySecret: [UInt8]
        private var state = State.start

        /// A server for one exchange; `nonce` must be fresh and unpredictable. `decoySecret`
        /// (the same for every exchange of a daemon) makes the salt answered for an unknown
        /// user stable, so a stranger cannot tell known from unknown names.
        public init(nonce: String, decoySecret: [UInt8]) {
            self.nonce = nonce
            self.decoySecret = decoySecret
        }

        /// The user name the client-first message asked for (authenticated or not), for logs.
        public var requestedUser: String? {
            switch state {
            case .start: nil
            case .sentFirst(let user, _, _, _, _), .done(let user): user
            }
        }

        /// The authenticated user name, once ``finalMessage(answering:)`` succeeded.
        public var authenticatedUser: String? {
            if case .done(let user) = state { return user }
            return nil
        }

        /// Answers the client-first message; `lookup` gives the verifier of a user name, or nil.
        public mutating func firstMessage(answering clientFirst: String, lookup: (String) -> Verifier?) throws -> String {
            guard case .start = state else { throw Failure.unexpectedMessage }
            guard clientFirst.hasPrefix("n,,") else {
                if clientFirst.hasPrefix("p=") || clientFirst.hasPrefix("y,") { throw Failure.channelBindingUnsupported }
                throw Failure.malformed("client-first starts with n,, (no channel binding, no authzid)")
            }
            let bare = String(clientFirst.dropFirst(3))
            let fields = try SCRAM.attributes(bare, expecting: ["n", "r"])
            guard let escaped = fields["n"], let user = SCRAM.unescape(escaped), !user.isEmpty else { throw Failure.malformed("user name") }
            guard let clientNonce = fields["r"], !clientNonce.isEmpty, SCRAM.isPrintable(clientNonce) else { throw Failure.malformed("nonce") }
            let verifier = lookup(user)
            let decoySalt = Array(try HMACSHA256(key: decoySecret).code(Array(user.utf8)).prefix(16))
            let salt = verifier?.salt ?? decoySalt
            let iterations = verifier?.iterations ?? SCRAM.defaultIterations
            let combined = clientNonce + nonce
            let serverFirst = "r=\(combined),s=\(base64(salt)),i=\(iterations)"
            state = .sentFirst(user: user, verifier: verifier, bare: bare, serverFirst: serverFirst, nonce: combined)
            return serverFirst
        }

        /// Checks the client-final message and returns the server-final message; throws
        /// ``Failure/authenticationFailed`` for a wrong password or an unknown user alike.
        public mutating func finalMessage(answering clientFinal: String) throws -> String {
            guard case .sentFirst(let user, let verifier, let bare, let serverFirst, let combined) = state else { throw Failure.unexpectedMessage }
            let fields = try SCRAM.attributes(clientFinal, expecting: ["c", "r", "p"])
            guard fields["c"] == "biws" else { throw Failure.channelBindingUnsupported }
            guard fields["r"] == combined else { throw Failure.nonceMismatch }
            guard let proofRange = clientFinal.range(of: ",p="), let proof = fields["p"].flatMap(unbase64), proof.count == 32 else {
                throw Failure.malformed("proof")
            }
            guard let verifier else { throw Failure.authenticationFailed }
            let authMessage = Array("\(bare),\(serverFirst),\(clientFinal[..<proofRange.lowerBound])".utf8)
            let signature = try HMACSHA256(key: verifier.storedKey).code(authMessage)
            let clientKey = zip(proof, signature).map { $0 ^ $1 }
            guard SCRAM.constantTimeEqual(Array(SHA256.hash(data: clientKey)), verifier.storedKey) else { throw Failure.authenticationFailed }
            state = .done(user: user)
            return "v=" + base64(try HMACSHA256(key: verifier.serverKey).code(authMessage))
        }
    }

    // MARK: - The parts

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with HMAC-SHA-256, 32 bytes (OpenSSL). The
    /// password is used as UTF-8 (SASLprep's normalisation is left to the caller: it changes
    /// nothing for ASCII passwords).
    static func saltedPassword(_ password: String, salt: [UInt8], iterations: Int) throws(CryptoError) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        let bytes = Array(password.utf8)
        let ok = bytes.withUnsafeBufferPointer { passwordBytes in
            PKCS5_PBKDF2_HMAC(
                passwordBytes.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, Int32(bytes.count),
                salt, Int32(salt.count), Int32(iterations), EVP_sha256(), 32, &output)
        }
        guard ok == 1 else { throw OpenSSL.lastError("PKCS5_PBKDF2_HMAC") }
        return output
    }

    /// ClientKey, StoredKey = SHA-256(ClientKey) and ServerKey of RFC 5802 §3.
    static func keys(salted: [UInt8]) throws(CryptoError) -> (client: [UInt8], stored: [UInt8], server: [UInt8]) {
        let mac = try HMACSHA256(key: salted)
        let client = mac.code(Array("Client Key".utf8))
        return (client, Array(SHA256.hash(data: client)), mac.code(Array("Server Key".utf8)))
    }

    /// `a=value` attributes separated by commas; the `expected` ones must come first, in order
    /// (RFC 5802 §7); extensions after them must be attributes too, and are ignored.
    static func attributes(_ message: String, expecting expected: [Character]) throws(Failure) -> [Character: String] {
        var result: [Character: String] = [:]
        let parts = message.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count >= expected.count else { throw .malformed("expected attributes \(expected.map(String.init).joined(separator: ","))") }
        for (part, name) in zip(parts, expected) {
            guard part.count >= 2, part.first == name, part.dropFirst().first == "=" else {
                throw .malformed("expected attribute \(name)= in '\(part.prefix(40))'")
            }
            result[name] = String(part.dropFirst(2))
        }
        for part in parts.dropFirst(expected.count) {
            guard part.count >= 2, part.first?.isASCII == true, part.first?.isLetter == true, part.dropFirst().first == "=" else {
                throw .malformed("an extension is an attribute a=value, not '\(part.prefix(40))'")
            }
        }
        return result
    }

    /// A user name in a message: `=` as `=3D`, `,` as `=2C`.
    static func escape(_ name: String) -> String {
        name.replacingOccurrences(of: "=", with: "=3D").replacingOccurrences(of: ",", with: "=2C")
    }

    static func unescape(_ text: String) -> String? {
        var result = ""
        var rest = Substring(text)
        while let index = rest.firstIndex(of: "=") {
            result += rest[..<index]
            let code = rest[index...].prefix(3)
            switch code {
            case "=3D": result += "="
            case "=2C": result += ","
            default: return nil
            }
            rest = rest[index...].dropFirst(3)
        }
        return result + rest
    }

    static func isPrintable(_ text: String) -> Bool {
        text.utf8.allSatisfy { (0x21...0x7E).contains($0) && $0 != UInt8(ascii: ",") }
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

private func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

private func unbase64(_ text: some StringProtocol) -> [UInt8]? { Data(base64Encoded: String(text)).map(Array.init) }
