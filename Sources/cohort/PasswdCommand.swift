import ArgumentParser
import CohortCrypto
import CohortSecurity
import Foundation

/// `cohort passwd`: writes a user's SCRAM-SHA-256 verifier into a users file (method
/// `password`), creating the file with mode 0600 if needed. A running daemon picks the change
/// up on SIGHUP.
struct PasswdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passwd",
        abstract: "Add, change or delete a user in a users file of method password.",
        discussion: """
            The password is read from --password-file, else from $COHORT_PASSWORD, else asked \
            for twice on the terminal. The file stores a salted, iterated verifier \
            (SCRAM-SHA-256, RFC 5802/7677), never the password. Send SIGHUP to the daemons \
            to reload it.
            """)

    @Option(help: "The users file (created if missing).")
    var file: String

    @Argument(help: "The user name.")
    var user: String

    @Option(help: "PBKDF2 iterations of the verifier (at least \(SCRAM.minimumIterations)).")
    var iterations: Int = SCRAM.defaultIterations

    @Option(help: "File whose first line is the password.")
    var passwordFile: String?

    @Flag(help: "Remove the user instead.")
    var delete = false

    func validate() throws {
        if let problem = UserTable.problem(withName: user) { throw ValidationError(problem) }
        guard iterations >= SCRAM.minimumIterations else {
            throw ValidationError("--iterations must be at least \(SCRAM.minimumIterations)")
        }
    }

    func run() throws {
        var table = UserTable()
        if FileManager.default.fileExists(atPath: file) {
            do {
                table = try UserTable(parsing: try String(contentsOfFile: file, encoding: .utf8))
            } catch let error as UserTableError {
                throw ValidationError("\(file): \(error)")
            }
        }
        if delete {
            guard table.remove(user) else { throw ValidationError("\(file) has no user \(user)") }
        } else {
            let password = try readPassword(file: passwordFile, prompt: "New password for \(user): ")
            if passwordFile == nil, ProcessInfo.processInfo.environment["COHORT_PASSWORD"] == nil {
                guard try readPassword(file: nil, prompt: "Again: ") == password else {
                    throw ValidationError("the passwords differ; nothing changed")
                }
            }
            guard !password.isEmpty else { throw ValidationError("empty password; nothing changed") }
            var generator = SystemRandomNumberGenerator()
            let salt = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            try table.set(try SCRAM.Verifier(password: password, salt: salt, iterations: iterations), for: user)
        }
        try write(table.text, to: file)
        print(delete ? "removed \(user) from \(file)" : "wrote \(user) to \(file) (SCRAM-SHA-256, \(iterations) iterations)")
    }

    /// Writes `text` to a temporary file of mode 0600 beside `path`, then renames it over
    /// `path`: a daemon reloading meanwhile reads the old file or the new, never half of one.
    private func write(_ text: String, to path: String) throws {
        let temporary = path + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ValidationError("cannot write \(temporary)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw ValidationError("cannot replace \(path): \(reason)")
        }
    }
}
