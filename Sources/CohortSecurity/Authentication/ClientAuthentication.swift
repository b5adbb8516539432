import CohortCore
import CohortCrypto
import Foundation

/// The client side of an authentication method: produces the first message (sent in the
/// connect frame), answers each challenge, and checks the daemon's final data (sent in the
/// accept frame). Pure: a nonce or key material comes in when it is made.
public protocol ClientAuthenticator: Sendable {
    /// The method's name, as the daemon offers it.
    var method: String { get }
    /// The first message, for the connect frame.
    mutating func firstMessage() -> [UInt8]
    /// The answer to the daemon's challenge.
    mutating func respond(to challenge: [UInt8]) throws(ClientAuthenticationError) -> [UInt8]
    /// Checks the daemon's last message; throws if the daemon did not prove what the method
    /// requires of it.
    mutating func finish(_ finalData: [UInt8]) throws(ClientAuthenticationError)
}

/// Why the client side of an authentication failed.
public struct ClientAuthenticationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var reason: String
    /// Creates an error.
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Client side of a method in which the client sends nothing and the daemon proves nothing:
/// `none`, and `peer-credentials` (the kernel vouches for the client).
public struct NoDataClientAuthenticator: ClientAuthenticator {
    /// The method's name.
    public let method: String
    /// The client side of `method` (`none` by default).
    public init(method: String = "none") { self.method = method }
    public func firstMessage() -> [UInt8] { [] }
    public func respond(to challenge: [UInt8]) throws(ClientAuthenticationError) -> [UInt8] {
        throw ClientAuthenticationError("method \(method) expects no challenge")
    }
    public func finish(_ finalData: [UInt8]) throws(ClientAuthenticationError) {
        guard finalData.isEmpty else { throw ClientAuthenticationError("method \(method) expects no data from the daemon") }
    }
}

/// Client side of method `password` (SCRAM-SHA-256). Answering the challenge runs PBKDF2 with
/// the daemon's iteration count (100,000 by default: tens of milliseconds), so drivers should
/// call ``respond(to:)`` off an event loop.
public struct PasswordClientAuthenticator: ClientAuthenticator {
    private var client: SCRAM.Client

    /// `nonce`: at least 18 fresh random bytes.
    public init(user: String, password: String, nonce: [UInt8]) {
        precondition(nonce.count >= 18, "a SCRAM nonce needs at least 18 random bytes")
        client = SCRAM.Client(username: user, password: password, nonce: Data(nonce).base64EncodedString())
    }

    public var method: String { PasswordAuthentication.name }

    public mutating func firstMessage() -> [UInt8] { Array(client.firstMessage().utf8) }

    public mutating func respond(to challenge: [UInt8]) throws(ClientAuthenticationError) -> [UInt8] {
        guard let serverFirst = String(validating: challenge, as: UTF8.self) else {
            throw ClientAuthenticationError("the daemon's SCRAM challenge is not UTF-8")
        }
        do {
            return Array(try client.finalMessage(answering: serverFirst).utf8)
        } catch {
            throw ClientAuthenticationError("\(error)")
        }
    }

    public mutating func finish(_ finalData: [UInt8]) throws(ClientAuthenticationError) {
        guard let serverFinal = String(validating: finalData, as: UTF8.self) else {
            throw ClientAuthenticationError("the daemon's SCRAM final message is not UTF-8")
        }
        do {
            try client.verify(serverFinal: serverFinal)
        } catch {
            throw ClientAuthenticationError("\(error)")
        }
    }
}
