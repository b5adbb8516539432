public import CohortCore
import CohortCrypto

/// The registry of client authentication methods a daemon can offer (`authMethods` in the
/// configuration file). Adding a method is one file in this folder and one line here.
public enum AuthenticationMethods {
    /// The names a daemon can offer.
    public static let available = [
        NoAuthentication().name, PasswordAuthentication.name, PeerCredentialsAuthentication.name, CertificateAuthentication.name,
    ]

    /// Makes the methods named in `names`, in that order. `usersFileText` is the users file
    /// (needed when `password` is offered); `nonceSecret` is 32 fresh bytes from a
    /// cryptographic generator.
    public static func make(
        _ names: [String], usersFileText: String?, nonceSecret: [UInt8]
    ) throws(AuthenticationSetupError) -> [any AuthenticationMethod] {
        guard !names.isEmpty else { throw AuthenticationSetupError("authMethods must name at least one method") }
        guard Set(names).count == names.count else {
            throw AuthenticationSetupError("authMethods names a method twice: \(names.joined(separator: ", "))")
        }
        return try names.map { name throws(AuthenticationSetupError) -> any AuthenticationMethod in
            switch name {
            case NoAuthentication().name:
                return NoAuthentication()
            case PeerCredentialsAuthentication.name:
                return PeerCredentialsAuthentication()
            case CertificateAuthentication.name:
                return CertificateAuthentication()
            case PasswordAuthentication.name:
                guard let usersFileText else {
                    throw AuthenticationSetupError("method password needs a users file (usersFile in the configuration, or --users)")
                }
                let users: UserTable
                do {
                    users = try UserTable(parsing: usersFileText)
                } catch {
                    throw AuthenticationSetupError("users file: \(error)")
                }
                return PasswordAuthentication(
                    users: users, nonceSecret: nonceSecret, decoySecret: decoySecret(usersFileText: usersFileText))
            default:
                throw AuthenticationSetupError(
                    "unknown authentication method '\(name)'; available: \(available.joined(separator: ", "))")
            }
        }
    }

    /// The key of the made-up salts for unknown users: a code keyed by the users file itself
    /// (secret, since it holds the verifiers), so the salt of an unknown name stays the same
    /// across restarts and reloads as long as the file does, like a real user's.
    private static func decoySecret(usersFileText: String) -> [UInt8] {
        (try? HMACSHA256(key: Array(usersFileText.utf8)).code(Array("cohort scram decoy salt".utf8))) ?? []
    }
}

/// The authentication methods of a configuration cannot be made.
public struct AuthenticationSetupError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Why.
    public var reason: String
    /// Creates an error.
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
