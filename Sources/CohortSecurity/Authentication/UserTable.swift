public import CohortCrypto
import Foundation

/// The users file of method `password`: one user per line, `NAME:VERIFIER`, where VERIFIER is
/// a SCRAM-SHA-256 verifier in the form of RFC 5803 (`SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY`,
/// base64 parts) — a salted, iterated hash, never the password. Blank lines and lines starting
/// with `#` are ignored. `cohort passwd` writes entries.
///
///     # cohort users: NAME:SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY
///     alice:SCRAM-SHA-256$100000:c2FsdHNhbHRzYWx0$Lp0...=:Xg3...=
public struct UserTable: Sendable, Hashable {
    /// Longest user name, in UTF-8 bytes.
    public static let nameBytesMax = 64

    /// The verifiers by user name.
    public private(set) var verifiers: [String: SCRAM.Verifier] = [:]

    /// An empty table.
    public init() {}

    /// Parses the text of a users file; throws with the line number of the first bad line.
    public init(parsing text: String) throws(UserTableError) {
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let colon = line.firstIndex(of: ":") else {
                throw UserTableError(line: index + 1, reason: "expected NAME:VERIFIER")
            }
            let name = String(line[..<colon])
            if let problem = Self.problem(withName: name) { throw UserTableError(line: index + 1, reason: problem) }
            guard verifiers[name] == nil else { throw UserTableError(line: index + 1, reason: "user \(name) is listed twice") }
            let verifier: SCRAM.Verifier
            do {
                verifier = try SCRAM.Verifier(encoded: String(line[line.index(after: colon)...]))
            } catch {
                throw UserTableError(line: index + 1, reason: "user \(name): \(error)")
            }
            guard verifier.iterations >= SCRAM.minimumIterations else {
                throw UserTableError(line: index + 1, reason:
                    "user \(name): \(verifier.iterations) iterations, fewer than the minimum of \(SCRAM.minimumIterations)")
            }
            verifiers[name] = verifier
        }
    }

    /// Why `name` cannot be a user name, or `nil` if it can: 1 to ``nameBytesMax`` bytes of
    /// printable characters, no `:` and no white space.
    public static func problem(withName name: String) -> String? {
        if name.isEmpty { return "empty user name" }
        if name.utf8.count > nameBytesMax { return "user name longer than \(nameBytesMax) bytes" }
        if name.contains(where: { $0 == ":" || $0.isWhitespace || $0.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) }) {
            return "user name \(name.debugDescription) contains ':', white space or a control character"
        }
        return nil
    }

    /// Adds or replaces the verifier of `name`.
    public mutating func set(_ verifier: SCRAM.Verifier, for name: String) throws(UserTableError) {
        if let problem = Self.problem(withName: name) { throw UserTableError(line: 0, reason: problem) }
        verifiers[name] = verifier
    }

    /// Removes `name`; returns whether it was there.
    @discardableResult
    public mutating func remove(_ name: String) -> Bool { verifiers.removeValue(forKey: name) != nil }

    /// The file's text, users sorted by name, with a header comment.
    public var text: String {
        "# cohort users (cohort passwd): NAME:SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY\n"
            + verifiers.keys.sorted().map { "\($0):\(verifiers[$0]!.encoded)\n" }.joined()
    }
}

/// A users file that does not parse.
public struct UserTableError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The 1-based line (0 when not from a file).
    public var line: Int
    /// What is wrong.
    public var reason: String
    /// Creates an error.
    public init(line: Int, reason: String) {
        self.line = line
        self.reason = reason
    }
    public var description: String { line > 0 ? "line \(line): \(reason)" : reason }
}
