/// The EVS properties that can be judged the moment something happens, checked on every
/// delivery and install of a simulated run (the ``EVSChecker`` judges the whole logs at the end):
/// at-most-once, integrity (only what was sent is delivered), FIFO per sender, a process is a
/// member of what it installs, a transitional configuration follows a regular one, and agreed
/// order between each delivery and the one before it at every other process.
struct OnlineEVSMonitor: Sendable {
    private(set) var violations: [EVSViolation] = []
    private var sent: Set<MessageKey> = []
    private var delivered: [String: Set<MessageKey>] = [:]
    private var lastFromSender: [String: [String: UInt64]] = [:]
    private var current: [String: EVSConfiguration] = [:]
    /// Per process: the position of each agreed or safe delivery, and the last one.
    private var agreedPositions: [String: [MessageKey: Int]] = [:]
    private var lastAgreed: [String: MessageKey] = [:]

    mutating func send(_ message: EVSMessage, at process: String) {
        sent.insert(message.key)
    }

    mutating func install(_ configuration: EVSConfiguration, at process: String) {
        if !configuration.members.contains(process) {
            violations.append(.init(property: "configurations", detail: "\(process) installs \(configuration.id) without being a member"))
        }
        if configuration.transitional, current[process]?.transitional ?? true {
            violations.append(.init(property: "configurations", detail: "\(process): transitional \(configuration.id) does not follow a regular configuration"))
        }
        current[process] = configuration
    }

    mutating func deliver(_ message: EVSMessage, at process: String) {
        let key = message.key
        guard delivered[process, default: []].insert(key).inserted else {
            violations.append(.init(property: "at-most-once", detail: "\(process) delivers \(message.sender)#\(message.sequence) twice"))
            return
        }
        if !sent.contains(key) {
            violations.append(.init(property: "integrity", detail: "\(process) delivers \(message.sender)#\(message.sequence), never sent"))
        }
        if message.service >= .fifo {
            if let last = lastFromSender[process]?[message.sender], last > message.sequence {
                violations.append(.init(property: "fifo", detail: "\(process) delivers \(message.sender)#\(message.sequence) after #\(last)"))
            }
            lastFromSender[process, default: [:]][message.sender] = max(lastFromSender[process]?[message.sender] ?? 0, message.sequence)
        }
        guard message.service >= .agreed else { return }
        let position = agreedPositions[process, default: [:]].count
        agreedPositions[process, default: [:]][key] = position
        if let previous = lastAgreed[process] {
            for (other, positions) in agreedPositions where other != process {
                if let mine = positions[key], let before = positions[previous], before > mine {
                    violations.append(.init(property: "agreed-order", detail: "\(process) delivers \(previous.sender)#\(previous.sequence) before \(message.sender)#\(message.sequence), \(other) the other way"))
                }
            }
        }
        lastAgreed[process] = key
    }
}
