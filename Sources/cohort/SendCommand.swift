import ArgumentParser
import Cohort
import CohortCore

/// `cohort send`: multicasts a text, or N numbered messages.
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send TEXT, or --count N messages whose payloads start with NAME:SEQ: padded to --size bytes.")

    @OptionGroup var connection: ConnectionArguments

    @Option(help: "Private name (default: generated).")
    var name: String?

    @Option(help: "Destination group (repeat for several; #name#daemon addresses one client).")
    var group: [String] = []

    @Option(help: "Service: unreliable, reliable, fifo, causal, agreed, safe.")
    var service: String = "agreed"

    @Flag(help: "Do not deliver the messages back to this sender.")
    var selfDiscard = false

    @Option(help: "Application message type (0-65535).")
    var type: UInt16 = 0

    @Option(help: "Number of messages (payload NAME:SEQ:[TEXT] padded to --size).")
    var count: Int?

    @Option(help: "Payload size in bytes for --count messages.")
    var size: Int?

    @Option(help: "Send --count messages at this many per second (default: as fast as flow control allows).")
    var rate: Double?

    @Flag(help: "Send with Virtual Synchrony: join the group (VS groups are closed), send in its views, pausing while it flushes, then leave.")
    var vs = false

    @Argument(help: "Text to send.")
    var text: String?

    func validate() throws {
        guard !group.isEmpty else { throw ValidationError("give at least one --group") }
        guard text != nil || count != nil else { throw ValidationError("give TEXT or --count") }
        if let count, count < 1 { throw ValidationError("--count must be positive") }
        if let size, size < 0 { throw ValidationError("--size must not be negative") }
        if let rate, !(rate > 0) { throw ValidationError("--rate must be positive") }
        if vs, group.count != 1 || group[0].hasPrefix("#") {
            throw ValidationError("--vs sends to exactly one group, not a private group")
        }
    }

    func run() async throws {
        let name = self.name ?? generatedName("send")
        let options = try connection.options(name: name, wantsMembership: vs)
        let service = try parseService(self.service, selfDiscard: selfDiscard)
        let payloads: [[UInt8]]
        if let count {
            payloads = (1...count).map { sequence in
                numberedPayload(name: name, sequence: sequence, text: text, size: size)
            }
        } else {
            payloads = [Array((text ?? "").utf8)]
        }
        let rate = self.rate
        if vs {
            return try await sendInViews(payloads, options: options, service: service)
        }
        try await CohortClient.withConnection(to: try connection.address(), options: options) { connection in
            if let rate {
                // Paced: each message leaves at its own time (start + i / rate).
                let start = ContinuousClock.now
                for (index, payload) in payloads.enumerated() {
                    try await Task.sleep(until: start + .seconds(Double(index) / rate))
                    try await connection.multicast(batch: [try connection.message(payload, to: group, service: service, messageType: type)])
                }
            }
            var batch: [PreparedMessage] = []
            for payload in rate == nil ? payloads : [] {
                batch.append(try connection.message(payload, to: group, service: service, messageType: type))
                if batch.count == 256 {
                    try await connection.multicast(batch: batch)
                    batch.removeAll(keepingCapacity: true)
                }
            }
            if !batch.isEmpty { try await connection.multicast(batch: batch) }
            // The daemon handles frames in order: once it closes the session after our
            // disconnect, every message before it has been ordered (or refused: a message that
            // access control or the architecture refused is answered with an error).
            try await connection.disconnect()
            var refusals: [(ErrorCode, String)] = []
            for try await event in connection.events {
                if case .error(let code, let reason) = event { refusals.append((code, reason)) }
            }
            if let (code, reason) = refusals.first {
                throw CohortError.daemonError(code, reason: refusals.count == 1 ? reason : "\(reason) (and \(refusals.count - 1) more)")
            }
        }
    }
}

extension SendCommand {
    /// `--vs`: joins the group with Virtual Synchrony, sends each message in a view (waiting
    /// out flushes), leaves once its own messages are delivered back, and disconnects. Events are
    /// read throughout: the flush layer runs as they are read.
    private func sendInViews(_ payloads: [[UInt8]], options: ConnectionOptions, service: ServiceType) async throws {
        let group = self.group[0], type = self.type, rate = self.rate
        try await CohortClient.withConnection(to: try connection.address(), options: options) { connection in
            let (views, viewArrived) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            let (delivered, ownDelivered) = AsyncStream<Void>.makeStream()
            try await connection.join(group, semantics: .virtualSynchrony)
            let reader = Task {
                defer { viewArrived.finish(); ownDelivered.finish() }
                var refusals: [(ErrorCode, String)] = []
                for try await event in connection.events {
                    switch event {
                    case .view(let view) where view.members.contains(connection.member): viewArrived.yield()
                    case .message(let message) where message.sender == connection.member: ownDelivered.yield()
                    case .error(let code, let reason): refusals.append((code, reason))
                    default: break
                    }
                }
                if let (code, reason) = refusals.first {
                    throw CohortError.daemonError(code, reason: refusals.count == 1 ? reason : "\(reason) (and \(refusals.count - 1) more)")
                }
            }
            var nextView = views.makeAsyncIterator()
            guard await nextView.next() != nil else { return try await reader.value }
            let start = ContinuousClock.now
            for (index, payload) in payloads.enumerated() {
                if let rate { try await Task.sleep(until: start + .seconds(Double(index) / rate)) }
                while true {
                    do {
                        try await connection.multicast(payload, to: [group], service: service, messageType: type)
                        break
                    } catch CohortError.virtualSynchrony(.flushing) {
                        // The group is changing: send again in the next view.
                        guard await nextView.next() != nil else { return try await reader.value }
                    }
                }
            }
            // Every message was sent in a view this client is in; once all are delivered back,
            // leaving cannot take any of them along.
            if !service.selfDiscard {
                var own = delivered.makeAsyncIterator()
                for _ in payloads { guard await own.next() != nil else { break } }
            }
            try await connection.leave(group)
            try await connection.disconnect()
            try await reader.value
        }
    }
}

/// `NAME:SEQ:` (plus `text`), padded with `.` to `size` bytes.
func numberedPayload(name: String, sequence: Int, text: String?, size: Int?) -> [UInt8] {
    var payload = Array("\(name):\(sequence):\(text ?? "")".utf8)
    if let size, payload.count < size { payload += [UInt8](repeating: UInt8(ascii: "."), count: size - payload.count) }
    return payload
}
