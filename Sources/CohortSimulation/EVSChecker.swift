public import CohortCore
import Foundation

/// A configuration as a process installs it: regular, or the transitional one between two
/// regular configurations (Extended Virtual Synchrony, Moser, Amir, Melliar-Smith, Agarwal, ICDCS
/// 1994).
public struct EVSConfiguration: Hashable, Sendable, Codable {
    /// Identifier, the same at every process that installs it.
    public var id: String
    /// Its members.
    public var members: Set<String>
    /// Transitional (the members that came together from the previous regular configuration).
    public var transitional: Bool

    /// A configuration.
    public init(id: String, members: Set<String>, transitional: Bool) {
        self.id = id
        self.members = members
        self.transitional = transitional
    }
}

/// A message: its sender's name and per-sender sequence number identify it.
public struct EVSMessage: Hashable, Sendable {
    /// The sender.
    public var sender: String
    /// Its number among the sender's messages, increasing.
    public var sequence: UInt64
    /// Its service level.
    public var service: ServiceLevel

    /// A message.
    public init(sender: String, sequence: UInt64, service: ServiceLevel) {
        self.sender = sender
        self.sequence = sequence
        self.service = service
    }

    var key: MessageKey { MessageKey(sender: sender, sequence: sequence) }
}

/// A delivery as the checker records it.
struct CheckedDelivery {
    var message: EVSMessage
    /// The regular configuration it belongs to (delivered in it, or in the transitional one after it).
    var regular: String?
    /// The transitional configuration it was delivered in, if any.
    var transitional: String?
    var position: Int
}

struct MessageKey: Hashable {
    var sender: String
    var sequence: UInt64
}

/// What one process observed, in its order.
public enum EVSEvent: Hashable, Sendable {
    /// A configuration installed.
    case install(EVSConfiguration)
    /// A message this process sent (in its current configuration).
    case send(EVSMessage)
    /// A message delivered to this process.
    case deliver(EVSMessage)
    /// The process crashed; its log ends here (a restarted process logs under a new name, its
    /// new incarnation).
    case crash
}

/// One broken property, with where it broke.
public struct EVSViolation: Hashable, Sendable, CustomStringConvertible {
    /// The property (see ``EVSChecker``).
    public var property: String
    /// What happened.
    public var detail: String

    public var description: String { "\(property): \(detail)" }
}

/// Checks the properties of DESIGN.md §3 on the logs of a run — simulated or real (read from
/// JSON lines with ``logs(jsonLines:)``); checks that need a sender's sends (integrity, the
/// sending configuration, self-delivery) run for the senders whose logs record them. Each
/// message is delivered at most once and only if sent (`at-most-once`, `integrity`); a process is a
/// member of what it installs, and a transitional configuration sits between two regular ones,
/// holding members of both (`configurations`); a message is delivered in the configuration it was
/// sent in or the transitional one after it (`sending-configuration`); self-delivery unless the
/// sender crashed (`self-delivery`, on quiescent logs); processes that install the same two
/// consecutive regular configurations deliver the same messages in the first
/// (`failure-atomicity`); FIFO per sender (`fifo`); causal order for causal, agreed and safe
/// messages (`causal`); one total order of agreed and safe messages (`agreed-order`); a safe
/// message delivered in a regular configuration is delivered by every member of it that did not
/// crash (`safe`, on quiescent logs).
public struct EVSChecker: Sendable {
    /// Each process's log.
    public var logs: [String: [EVSEvent]]
    /// The run ended with nothing in flight, so what was not delivered never will be: enables
    /// the self-delivery and safe-delivery checks.
    public var quiescent: Bool

    /// A checker for `logs`.
    public init(logs: [String: [EVSEvent]], quiescent: Bool) {
        self.logs = logs
        self.quiescent = quiescent
    }

    /// Every violation found (empty when every property holds).
    public func violations() -> [EVSViolation] {
        var found: [EVSViolation] = []
        let processes = logs.keys.sorted()
        var sent: [MessageKey: (message: EVSMessage, configuration: String?)] = [:]
        var crashed: Set<String> = []
        // Per process: each delivery's configuration (the regular one it belongs to, and
        // whether it was delivered in the transitional one after it) and position.
        var deliveries: [String: [CheckedDelivery]] = [:]
        // Per process: the regular configurations it installed, in order.
        var regulars: [String: [String]] = [:]

        for process in processes {
            var current: EVSConfiguration?
            var lastRegular: EVSConfiguration?
            var delivered: Set<MessageKey> = []
            var lastFromSender: [String: UInt64] = [:]
            for (position, event) in logs[process]!.enumerated() {
                switch event {
                case .install(let configuration):
                    if !configuration.members.contains(process) {
                        found.append(.init(property: "configurations", detail: "\(process) installs \(configuration.id) without being a member"))
                    }
                    if configuration.transitional {
                        if current == nil || current!.transitional {
                            found.append(.init(property: "configurations", detail: "\(process): transitional \(configuration.id) does not follow a regular configuration"))
                        } else if !configuration.members.isSubset(of: current!.members) {
                            found.append(.init(property: "configurations", detail: "\(process): transitional \(configuration.id) holds members outside \(current!.id)"))
                        }
                    } else {
                        if let current, current.transitional, !current.members.isSubset(of: configuration.members) {
                            found.append(.init(property: "configurations", detail: "\(process): \(configuration.id) lacks members of the transitional \(current.id) before it"))
                        }
                        if let lastRegular, current?.transitional != true {
                            found.append(.init(property: "configurations", detail: "\(process): no transitional configuration between \(lastRegular.id) and \(configuration.id)"))
                        }
                        lastRegular = configuration
                        regulars[process, default: []].append(configuration.id)
                    }
                    current = configuration
                case .send(let message):
                    if message.sender != process {
                        found.append(.init(property: "integrity", detail: "\(process) logs a send of \(message.sender)'s message"))
                    }
                    sent[message.key] = (message, current.flatMap { $0.transitional ? nil : $0.id })
                case .deliver(let message):
                    if !delivered.insert(message.key).inserted {
                        found.append(.init(property: "at-most-once", detail: "\(process) delivers \(message.sender)#\(message.sequence) twice"))
                        continue
                    }
                    if message.service >= .fifo {
                        if let last = lastFromSender[message.sender], last > message.sequence {
                            found.append(.init(property: "fifo", detail: "\(process) delivers \(message.sender)#\(message.sequence) after #\(last)"))
                        }
                        lastFromSender[message.sender] = max(lastFromSender[message.sender] ?? 0, message.sequence)
                    }
                    deliveries[process, default: []].append(CheckedDelivery(
                        message: message, regular: lastRegular?.id,
                        transitional: current?.transitional == true ? current?.id : nil, position: position))
                case .crash:
                    crashed.insert(process)
                }
            }
        }

        // Integrity and the sending configuration, for senders whose logs record their sends.
        let senders = Set(sent.keys.map(\.sender))
        for process in processes {
            for delivery in deliveries[process] ?? [] {
                guard senders.contains(delivery.message.sender) else { continue }
                guard let origin = sent[delivery.message.key] else {
                    found.append(.init(property: "integrity", detail: "\(process) delivers \(delivery.message.sender)#\(delivery.message.sequence), never sent"))
                    continue
                }
                if let configuration = origin.configuration, delivery.regular != configuration {
                    found.append(.init(property: "sending-configuration", detail: "\(process) delivers \(delivery.message.sender)#\(delivery.message.sequence) (sent in \(configuration)) in \(delivery.regular ?? "none")"))
                }
            }
        }

        // Self-delivery.
        if quiescent {
            var deliveredBy: [String: Set<MessageKey>] = [:]
            for (process, list) in deliveries { deliveredBy[process] = Set(list.map(\.message.key)) }
            for (key, origin) in sent where !crashed.contains(key.sender) {
                if !(deliveredBy[key.sender]?.contains(key) ?? false) {
                    found.append(.init(property: "self-delivery", detail: "\(key.sender) never delivers its own #\(key.sequence) (sent in \(origin.configuration ?? "a transitional configuration"))"))
                }
            }
        }

        // Failure atomicity: same two consecutive regular configurations → same messages in the first.
        var deliveredIn: [String: [String: Set<MessageKey>]] = [:]  // process → regular → messages
        for process in processes {
            for delivery in deliveries[process] ?? [] {
                if let regular = delivery.regular { deliveredIn[process, default: [:]][regular, default: []].insert(delivery.message.key) }
            }
        }
        var moves: [[String]: [String]] = [:]  // (C, C') → processes
        for process in processes {
            let sequence = regulars[process] ?? []
            for index in sequence.indices.dropLast() { moves[[sequence[index], sequence[index + 1]], default: []].append(process) }
        }
        for (move, movers) in moves.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) where movers.count > 1 {
            let reference = deliveredIn[movers[0]]?[move[0]] ?? []
            for other in movers.dropFirst() where (deliveredIn[other]?[move[0]] ?? []) != reference {
                found.append(.init(property: "failure-atomicity", detail: "\(movers[0]) and \(other) move from \(move[0]) to \(move[1]) with different messages delivered in \(move[0])"))
            }
        }

        // Causal order, from each message's causal past (what its sender had sent or delivered).
        found += causalViolations(processes: processes, deliveries: deliveries)

        // One total order of agreed and safe messages.
        var positions: [String: [MessageKey: Int]] = [:]
        var agreed: [String: [MessageKey]] = [:]
        for process in processes {
            for (index, delivery) in (deliveries[process] ?? []).enumerated() where delivery.message.service >= .agreed {
                positions[process, default: [:]][delivery.message.key] = index
                agreed[process, default: []].append(delivery.message.key)
            }
        }
        for (first, p) in processes.enumerated() {
            for q in processes.dropFirst(first + 1) {
                guard let inOrder = agreed[p], let ofQ = positions[q] else { continue }
                // p's agreed deliveries that q also delivers, in p's order, must be in q's order too.
                var previous: (key: MessageKey, position: Int)?
                for key in inOrder {
                    guard let position = ofQ[key] else { continue }
                    if let previous, previous.position > position {
                        found.append(.init(property: "agreed-order", detail: "\(p) delivers \(previous.key.sender)#\(previous.key.sequence) before \(key.sender)#\(key.sequence), \(q) the other way"))
                    }
                    previous = (key, position)
                }
            }
        }

        // Safe delivery: delivered in a regular configuration, by every member of it; in a
        // transitional one, by every member of that (EVS: safe delivery holds for the
        // configuration the message is delivered in).
        if quiescent {
            var members: [String: Set<String>] = [:]
            for log in logs.values {
                for case .install(let configuration) in log { members[configuration.id] = configuration.members }
            }
            for process in processes {
                for delivery in deliveries[process] ?? [] where delivery.message.service == .safe {
                    guard let regular = delivery.regular else { continue }
                    for member in members[delivery.transitional ?? regular] ?? [] where logs[member] != nil && !crashed.contains(member)
                        && !(deliveredIn[member]?[regular]?.contains(delivery.message.key) ?? false) {
                        found.append(.init(property: "safe", detail: "\(process) delivers safe \(delivery.message.sender)#\(delivery.message.sequence) in \(regular); \(member) never does there"))
                    }
                }
            }
        }
        return found
    }

    /// Each causal (or stronger) message's causal past is the sender's causal messages sent or
    /// delivered before it (with their pasts); a process that delivers a message and one of its
    /// past must deliver the past one first.
    private func causalViolations(processes: [String], deliveries: [String: [CheckedDelivery]]) -> [EVSViolation] {
        var senders: Set<String> = []
        for log in logs.values {
            for case .send(let message) in log { senders.insert(message.sender) }
        }
        var past: [MessageKey: [String: UInt64]] = [:]  // message → sender → highest sequence in its past
        var progress: [String: Int] = [:]
        var known: [String: [String: UInt64]] = [:]
        var advanced = true
        while advanced {
            advanced = false
            for process in processes {
                let log = logs[process]!
                var index = progress[process, default: 0]
                scan: while index < log.count {
                    switch log[index] {
                    case .send(let message) where message.service >= .causal:
                        past[message.key] = known[process, default: [:]]
                        known[process, default: [:]][message.sender] = max(known[process]?[message.sender] ?? 0, message.sequence)
                    case .deliver(let message) where message.service >= .causal && message.sender != process:
                        guard let messagePast = past[message.key] else {
                            // Unknown past (no sends recorded for its sender), or its send not reached yet.
                            if !senders.contains(message.sender) { past[message.key] = [:] } else { break scan }
                            continue scan
                        }
                        known[process, default: [:]].merge(messagePast, uniquingKeysWith: max)
                        known[process, default: [:]][message.sender] = max(known[process]?[message.sender] ?? 0, message.sequence)
                    default:
                        break
                    }
                    index += 1
                    advanced = true
                }
                progress[process] = index
            }
        }
        var found: [EVSViolation] = []
        for process in processes {
            let list = deliveries[process] ?? []
            // Per sender: the sequences this process delivers, ascending, each with the latest
            // index (in delivery order) among it and the smaller ones.
            var bySender: [String: [(sequence: UInt64, index: Int)]] = [:]
            for (index, delivery) in list.enumerated() {
                bySender[delivery.message.sender, default: []].append((delivery.message.sequence, index))
            }
            var latest: [String: (sequences: [UInt64], latestIndex: [Int])] = [:]
            for (sender, entries) in bySender {
                let sorted = entries.sorted { $0.sequence < $1.sequence }
                var running = -1
                latest[sender] = (sorted.map(\.sequence), sorted.map { running = max(running, $0.index); return running })
            }
            for (index, delivery) in list.enumerated() {
                guard delivery.message.service >= .causal, let messagePast = past[delivery.message.key] else { continue }
                for (sender, highest) in messagePast {
                    // Past messages this process delivers at all must already be delivered.
                    guard let table = latest[sender] else { continue }
                    var low = 0, high = table.sequences.count
                    while low < high {
                        let middle = (low + high) / 2
                        if table.sequences[middle] <= highest { low = middle + 1 } else { high = middle }
                    }
                    guard low > 0, table.latestIndex[low - 1] > index else { continue }
                    let late = list[table.latestIndex[low - 1]].message
                    found.append(.init(property: "causal", detail: "\(process) delivers \(delivery.message.sender)#\(delivery.message.sequence) before \(sender)#\(late.sequence), which precedes it"))
                }
            }
        }
        return found
    }
}

// MARK: - JSON lines

extension EVSChecker {
    /// One line of a delivery log: `{"process": "d1", "event": "install", "id": "3.d1",
    /// "members": ["d1", "d2"], "transitional": false}`, `{"process": "d1", "event": "send" or
    /// "deliver", "sender": "d2", "sequence": 7, "service": "agreed"}`, `{"process": "d1",
    /// "event": "crash"}`.
    public struct LogLine: Codable, Sendable {
        /// The process whose log the event belongs to.
        public var process: String
        /// `install`, `send`, `deliver` or `crash`.
        public var event: String
        /// An installed configuration's identifier.
        public var id: String?
        /// An installed configuration's members.
        public var members: [String]?
        /// Whether an installed configuration is transitional (default false).
        public var transitional: Bool?
        /// A sent or delivered message's sender.
        public var sender: String?
        /// A sent or delivered message's per-sender sequence number.
        public var sequence: UInt64?
        /// A sent or delivered message's service level (default `agreed`).
        public var service: String?
    }

    /// Why a log does not parse.
    public struct LogError: Error, Hashable, Sendable, CustomStringConvertible {
        /// The 1-based line number.
        public var line: Int
        /// What is wrong with it.
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    /// One client's log as `cohort listen --json` prints it, for the checker: each view of
    /// `group` is a configuration install (its view id, members and transitional flag), each
    /// message to `group` a delivery whose sender is the sending member and whose sequence number
    /// is the `SEQ` of a payload that starts `NAME:SEQ:` (as `cohort send --count` numbers its
    /// messages). Events of other groups and error lines are skipped; a message without a number
    /// is an error, so that a log cannot pass unchecked.
    ///
    /// A view change caused by a join, leave or disconnect is itself ordered among the messages,
    /// so it needs no transitional view; the converter gives it an empty transitional
    /// configuration of the members in both views (named after the two views, so every member
    /// names it alike), and the checker's rules for configuration changes apply to every view.
    public static func events(listenJSONLines text: String, group: String) throws(LogError) -> [EVSEvent] {
        var events: [EVSEvent] = []
        var previous: EVSConfiguration?
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { continue }
            guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any] else {
                throw LogError(line: number + 1, reason: "not a JSON object")
            }
            switch object["event"] as? String {
            case "view":
                guard object["group"] as? String == group else { continue }
                guard let id = object["view_id"] as? String, let members = object["members"] as? [String] else {
                    throw LogError(line: number + 1, reason: "view needs view_id and members")
                }
                let view = EVSConfiguration(id: id, members: Set(members), transitional: object["transitional"] as? Bool ?? false)
                if let previous, !previous.transitional, !view.transitional {
                    events.append(.install(EVSConfiguration(
                        id: "\(previous.id)>\(view.id)", members: previous.members.intersection(view.members), transitional: true)))
                }
                events.append(.install(view))
                previous = view
            case "message":
                guard (object["groups"] as? [String])?.contains(group) ?? (object["group"] as? String == group) else { continue }
                guard let sender = object["sender"] as? String, let payload = object["payload"] as? String else {
                    throw LogError(line: number + 1, reason: "message needs sender and a text payload")
                }
                let fields = payload.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
                guard fields.count >= 2, let sequence = UInt64(fields[1]) else {
                    throw LogError(line: number + 1, reason: "payload does not start NAME:SEQ:")
                }
                guard let service = ServiceLevel(name: object["service"] as? String ?? "agreed") else {
                    throw LogError(line: number + 1, reason: "unknown service")
                }
                events.append(.deliver(EVSMessage(sender: sender, sequence: sequence, service: service)))
            default:
                continue
            }
        }
        return events
    }

    /// Logs read from JSON lines (blank lines skipped), each process's events in file order.
    public static func logs(jsonLines text: String) throws(LogError) -> [String: [EVSEvent]] {
        var logs: [String: [EVSEvent]] = [:]
        let decoder = JSONDecoder()
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { continue }
            let entry: LogLine
            do { entry = try decoder.decode(LogLine.self, from: Data(trimmed.utf8)) } catch {
                throw LogError(line: number + 1, reason: "not a log line: \(error)")
            }
            let event: EVSEvent
            switch entry.event {
            case "install":
                guard let id = entry.id, let members = entry.members else { throw LogError(line: number + 1, reason: "install needs id and members") }
                event = .install(EVSConfiguration(id: id, members: Set(members), transitional: entry.transitional ?? false))
            case "send", "deliver":
                guard let sender = entry.sender, let sequence = entry.sequence else { throw LogError(line: number + 1, reason: "\(entry.event) needs sender and sequence") }
                guard let service = ServiceLevel(name: entry.service ?? "agreed") else {
                    throw LogError(line: number + 1, reason: "unknown service '\(entry.service ?? "")'")
                }
                let message = EVSMessage(sender: sender, sequence: sequence, service: service)
                event = entry.event == "send" ? .send(message) : .deliver(message)
            case "crash":
                event = .crash
            default:
                throw LogError(line: number + 1, reason: "unknown event '\(entry.event)'")
            }
            logs[entry.process, default: []].append(event)
        }
        return logs
    }
}
