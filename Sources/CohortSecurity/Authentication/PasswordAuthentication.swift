public import CohortCore
import CohortCrypto
import Foundation

/// Method `password`: SCRAM-SHA-256 (RFC 5802, RFC 7677) against a ``UserTable``. The password
/// never travels; both sides contribute a nonce, so a recorded exchange cannot be replayed; the
/// daemon holds only salted, iterated verifiers; and the client checks the daemon's final
/// signature, so a daemon without the verifier cannot pose as the real one.
///
/// Three handshake messages carry SCRAM's four: the connect frame carries client-first, the
/// challenge server-first, the response client-final, and the accept frame server-final.
///
/// The method is a pure value: nonces come from a keyed pseudo-random function (HMAC-SHA256
/// under a 32-byte secret the daemon draws from the system's generator when it loads the
/// users file) over a counter, so they are unique and unpredictable without the secret.
public struct PasswordAuthentication: AuthenticationMethod {
    /// The method's name.
    public static let name = "password"
    public var name: String { Self.name }

    private let users: UserTable
    private let nonceSecret: [UInt8]
    private let decoySecret: [UInt8]
    private var noncesIssued: UInt64 = 0

    /// The method over `users`. `nonceSecret` (at least 32 bytes, from a cryptographic
    /// generator) keys the nonces. `decoySecret` keys the made-up salt answered for an unknown
    /// user; it should stay the same while the users file does (e.g. a hash of the file), so
    /// that a stranger cannot tell unknown names from known ones by asking twice.
    public init(users: UserTable, nonceSecret: [UInt8], decoySecret: [UInt8]) {
        precondition(nonceSecret.count >= 32, "the nonce secret must have at least 32 bytes")
        self.users = users
        self.nonceSecret = nonceSecret
        self.decoySecret = decoySecret
    }

    public mutating func start(_ firstMessage: [UInt8], origin: ClientOrigin) -> AuthenticationStep {
        noncesIssued += 1
        guard let clientFirst = String(validating: firstMessage, as: UTF8.self) else {
            return .refused(Self.malformed("client-first message is not UTF-8"))
        }
        var server = SCRAM.Server(nonce: nonce(noncesIssued), decoySecret: decoySecret)
        do {
            var knownUser = false
            let serverFirst = try server.firstMessage(answering: clientFirst) { user in
                let verifier = users.verifiers[user]
                knownUser = verifier != nil
                return verifier
            }
            return .challenge(Array(serverFirst.utf8), then: PasswordExchange(server: server, knownUser: knownUser))
        } catch {
            return .refused(Self.refusal(error, knownUser: false))
        }
    }

    /// 18 bytes of the keyed PRF over `counter`, in base64 (24 printable characters, no comma).
    private func nonce(_ counter: UInt64) -> String {
        var counterBytes = [UInt8](repeating: 0, count: 8)
        for index in 0..<8 { counterBytes[index] = UInt8(truncatingIfNeeded: counter >> (56 - 8 * UInt64(index))) }
        // The secret is at least 32 bytes and HMAC takes any key: this cannot fail.
        let code = (try? HMACSHA256(key: nonceSecret).code(Array("cohort scram nonce".utf8), counterBytes)) ?? counterBytes
        return Data(code.prefix(18)).base64EncodedString()
    }

    static func malformed(_ detail: String) -> AuthenticationRefusal {
        AuthenticationRefusal(.authMalformed, reason: "malformed SCRAM message", label: "malformed", detail: detail)
    }

    /// The refusal for a SCRAM failure: the client learns only "wrong user name or password"
    /// for both an unknown user and a wrong password; the log learns which.
    static func refusal(_ error: any Error, knownUser: Bool, user: String? = nil) -> AuthenticationRefusal {
        switch error as? SCRAM.Failure {
        case .authenticationFailed?:
            let who = user.map { "user \($0.debugDescription): " } ?? ""
            return AuthenticationRefusal(
                .authFailed, reason: "wrong user name or password", label: knownUser ? "wrong_password" : "unknown_user",
                detail: who + (knownUser ? "wrong password" : "no such user"))
        case let failure?:
            return malformed(failure.description)
        case nil:
            return AuthenticationRefusal(.authFailed, reason: "authentication failed", label: "internal", detail: "\(error)")
        }
    }
}

/// A SCRAM exchange waiting for the client-final message.
struct PasswordExchange: AuthenticationExchange {
    let server: SCRAM.Server
    let knownUser: Bool

    func next(_ response: [UInt8]) -> AuthenticationStep {
        guard let clientFinal = String(validating: response, as: UTF8.self) else {
            return .refused(PasswordAuthentication.malformed("client-final message is not UTF-8"))
        }
        var server = self.server
        do {
            let serverFinal = try server.finalMessage(answering: clientFinal)
            guard let user = server.authenticatedUser else {
                return .refused(PasswordAuthentication.refusal(
                    SCRAM.Failure.authenticationFailed, knownUser: knownUser, user: server.requestedUser))
            }
            return .accepted(Principal(user), finalData: Array(serverFinal.utf8))
        } catch {
            return .refused(PasswordAuthentication.refusal(error, knownUser: knownUser, user: server.requestedUser))
        }
    }
}
