import ArgumentParser
import Cohort
import CohortCore
import CohortSecurity
import CohortTransport
import Foundation

/// Options shared by every command that talks to a daemon.
struct ConnectionArguments: ParsableArguments {
    @Option(help: "Daemon address: host:port or unix:PATH.")
    var daemon: String = "127.0.0.1:4803"

    @Option(help: "Security architecture (must match the daemon's): \(Architecture.registered.map(\.name).joined(separator: ", ")).")
    var architecture: String = "plain"

    @Option(help: "Cipher suite sealing group data under an encrypting architecture: \(ArchitectureOptions.cipherNames.joined(separator: ", ")).")
    var cipher: String = "aes-256-gcm"

    @Option(help: "Authentication method: none, password (implied by --user), peer-credentials (Unix socket only).")
    var auth: String?

    @Option(help: "Authenticate with method password as this user (password from --password-file, $COHORT_PASSWORD, or a prompt).")
    var user: String?

    @Option(help: "File whose first line is the password of --user.")
    var passwordFile: String?

    @Option(help: "Connect with TLS, trusting these CA certificates (PEM) for the daemon's certificate.")
    var tlsCa: String?

    @Option(help: "Client certificate (PEM) to present over TLS (method certificate).")
    var tlsCert: String?

    @Option(help: "Private key (PEM) of --tls-cert.")
    var tlsKey: String?

    func address() throws -> DaemonAddress {
        do { return try DaemonAddress(parsing: daemon) } catch { throw ValidationError(error.description) }
    }

    func options(name: String, wantsMembership: Bool = true) throws -> ConnectionOptions {
        var options = ConnectionOptions(name: name)
        options.wantsMembership = wantsMembership
        do { options.architecture = try Architecture.named(architecture) } catch { throw ValidationError(error.description) }
        options.architectureOptions.cipher = cipher
        do { try options.architectureOptions.validate() } catch { throw ValidationError(error.description) }
        options.credentials = try credentials()
        if let tlsCa {
            guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
            options.tls = TLSClientOptions(trustRootsFile: tlsCa, certificateFile: tlsCert, privateKeyFile: tlsKey)
        } else if tlsCert != nil || tlsKey != nil {
            throw ValidationError("--tls-cert and --tls-key need --tls-ca")
        }
        return options
    }

    /// The credentials the flags select: `--auth`, or method password with `--user`, else none.
    func credentials() throws -> Credentials {
        switch auth ?? (user == nil ? "none" : "password") {
        case "none", "peer-credentials", "certificate":
            if user != nil || passwordFile != nil { throw ValidationError("--user and --password-file go with --auth password") }
            switch auth {
            case "peer-credentials": return .peerCredentials
            case "certificate": return .certificate
            default: return .none
            }
        case "password":
            guard let user else { throw ValidationError("--auth password needs --user") }
            return .password(user: user, password: try readPassword(file: passwordFile, prompt: "Password for \(user): "))
        case let other:
            throw ValidationError("unknown authentication method '\(other)'; one of none, password, peer-credentials, certificate")
        }
    }
}

/// Parses `--semantics evs|vs`.
func parseSemantics(_ name: String) throws -> GroupSemantics {
    guard let semantics = GroupSemantics(rawValue: name) else {
        throw ValidationError("unknown semantics '\(name)'; one of: evs, vs")
    }
    return semantics
}

/// Parses a service name such as `agreed` or `fifo`.
func parseService(_ name: String, selfDiscard: Bool = false) throws -> ServiceType {
    guard let level = ServiceLevel(name: name) else {
        throw ValidationError("unknown service '\(name)'; one of: \(ServiceLevel.allCases.map(\.description).joined(separator: ", "))")
    }
    return ServiceType(level, selfDiscard: selfDiscard)
}

/// A private name unique enough for a throw-away client.
func generatedName(_ prefix: String) -> String {
    "\(prefix)\(ProcessInfo.processInfo.processIdentifier % 100_000)-\(UInt16.random(in: 0...UInt16.max))"
}

/// JSON lines as `cohort listen --json` prints them (keys sorted; one object per line).
enum EventJSON {
    static func object(for event: CohortEvent) -> [String: Any]? {
        switch event {
        case .message(let message):
            var object: [String: Any] = [
                "event": "message", "group": message.groups.first?.rawValue ?? "",
                "groups": message.groups.map(\.rawValue), "sender": message.sender.description,
                "service": message.service.level.description, "type": Int(message.messageType),
                "size": message.payload.count,
            ]
            if let text = String(validating: message.payload, as: UTF8.self) {
                object["payload"] = text
            } else {
                object["payload_b64"] = Data(message.payload).base64EncodedString()
            }
            return object
        case .view(let view):
            var object: [String: Any] = [
                "event": "view", "group": view.group.rawValue, "view_id": view.viewID.description,
                "members": view.members.map(\.description), "transitional": view.transitional,
                "cause": view.cause.description, "changed": view.changed.map(\.description),
                "continuing": view.continuing.map(\.description), "semantics": view.semantics.rawValue,
            ]
            // The id of the view's group key, when the architecture keys views (never the key).
            if let key = view.key { object["key_id"] = ViewKey.hex(key.keyID) }
            return object
        case .error(let code, let reason):
            return ["event": "error", "code": code.description, "reason": reason]
        case .flushRequest(let group):
            return ["event": "flush_request", "group": group.rawValue]
        case .status:
            return nil
        }
    }

    static func line(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

/// A human-readable line for an event.
func describe(_ event: CohortEvent) -> String {
    switch event {
    case .message(let message):
        let text = String(validating: message.payload, as: UTF8.self) ?? "<\(message.payload.count) bytes>"
        return "[\(message.groups.map(\.rawValue).joined(separator: ","))] \(message.sender) (\(message.service), type \(message.messageType)): \(text)"
    case .view(let view):
        let kind = view.transitional ? "transitional view" : view.semantics == .virtualSynchrony ? "VS view" : "view"
        return "\(kind) \(view.group) \(view.viewID) (\(view.cause) \(view.changed.map(\.description).joined(separator: ","))): \(view.members.map(\.description).joined(separator: " "))"
            + (view.key.map { " key \(ViewKey.hex($0.keyID))" } ?? "")
    case .status(let status):
        return "status of \(status.daemonName)"
    case .error(let code, let reason):
        return "error (\(code)): \(reason)"
    case .flushRequest(let group):
        return "flush request for \(group)"
    }
}

/// Writes a line to standard output without buffering surprises.
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Seconds elapsed since `start`.
func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// A password from the first line of `file`, else from `$COHORT_PASSWORD`, else asked for on the
/// terminal without echo. Never from a flag: command lines are visible to every user.
func readPassword(file: String?, prompt: String) throws -> String {
    if let file {
        do {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            return String(text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        } catch {
            throw ValidationError("cannot read password file \(file): \(error.localizedDescription)")
        }
    }
    if let password = ProcessInfo.processInfo.environment["COHORT_PASSWORD"] { return password }
    guard isatty(STDIN_FILENO) == 1, let entered = getpass(prompt) else {
        throw ValidationError("no password: give --password-file, set COHORT_PASSWORD, or run on a terminal")
    }
    return String(cString: entered)
}
