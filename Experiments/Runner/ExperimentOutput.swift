import Foundation

/// Where an experiment writes its figures: `Results/<experiment>/<name>.csv`, one row per
/// measurement (rewritten after every row, so an interrupted run keeps what it measured), and
/// the run's entry under `runs.<name>` in `Results/<experiment>/meta.json`: git revision,
/// machine, cores, date, parameters, seed, medians and the command that produced it.
struct ExperimentOutput {
    let experiment: String
    let name: String
    let directory: URL
    private var lines: [String]
    private let started = Date()
    private let loadBefore = ExperimentOutput.loadAverage()

    /// Starts `Results/<experiment>/<name>.csv` under `results` with the `columns` header.
    init(experiment: String, name: String, results: URL, columns: [String]) throws {
        self.experiment = experiment
        self.name = name
        directory = results.appendingPathComponent(experiment)
        lines = [columns.joined(separator: ",")]
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try flush()
    }

    /// The CSV file.
    var csv: URL { directory.appendingPathComponent("\(name).csv") }

    /// Appends one row and rewrites the CSV.
    mutating func append(_ fields: [any CustomStringConvertible]) throws {
        lines.append(fields.map { "\($0)" }.joined(separator: ","))
        try flush()
    }

    private func flush() throws {
        try (lines.joined(separator: "\n") + "\n").write(to: csv, atomically: true, encoding: .utf8)
    }

    /// Writes this run's entry into `meta.json` (other names' entries stay).
    func finish(parameters: [String: Any], summary: [String: Any], seed: UInt64? = nil) throws {
        let metaURL = directory.appendingPathComponent("meta.json")
        var meta: [String: Any] = [:]
        if let data = try? Data(contentsOf: metaURL), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            meta = object
        }
        var runs = meta["runs"] as? [String: Any] ?? [:]
        var entry: [String: Any] = [
            "csv": csv.lastPathComponent,
            "revision": Self.revision(),
            "date": ISO8601DateFormatter().string(from: started),
            "seconds": (Date().timeIntervalSince(started) * 10).rounded() / 10,
            "machine": Self.machine(loadBefore: loadBefore),
            "parameters": parameters,
            "summary": summary,
            "command": (["cohort-experiments"] + CommandLine.arguments.dropFirst()).joined(separator: " "),
        ]
        if let seed { entry["seed"] = seed }
        runs[name] = entry
        meta["experiment"] = experiment
        meta["runs"] = runs
        let data = try JSONSerialization.data(withJSONObject: meta, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try data.write(to: metaURL)
        print("wrote \(csv.path) and \(metaURL.path)")
    }

    /// The machine an experiment ran on.
    static func machine(loadBefore: [String]) -> [String: Any] {
        var uts = utsname()
        uname(&uts)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last!.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        return [
            "system": "\(field(uts.sysname)) \(field(uts.release)) \(field(uts.machine))",
            "cpu": model,
            "cores": ProcessInfo.processInfo.activeProcessorCount,
            "loadavg_before": loadBefore,
            "loadavg_after": loadAverage(),
        ]
    }

    /// The 1, 5 and 15 minute load averages (the machine is shared: a figure taken under load
    /// says so).
    static func loadAverage() -> [String] {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? ""
        return text.split(separator: " ").prefix(3).map(String.init)
    }

    /// `git rev-parse HEAD`, with `-dirty` when tracked files outside `Results/` differ from it.
    static func revision() -> String {
        let head = git(["rev-parse", "HEAD"]) ?? "unknown"
        let dirty = !(git(["status", "--porcelain", "--untracked-files=no", "--", ".", ":!Results"]) ?? "").isEmpty
        return head + (dirty ? "-dirty" : "")
    }

    private static func git(_ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Prints `[step/total]` progress lines with the time elapsed and an estimate of what remains.
struct Progress {
    let total: Int
    private(set) var step = 0
    private let start = ContinuousClock.now

    init(total: Int) { self.total = total }

    mutating func report(_ line: String) {
        step += 1
        let elapsed = (ContinuousClock.now - start).seconds
        let remaining = step < total ? String(format: ", ~%.0f s left", elapsed / Double(step) * Double(total - step)) : ""
        print(String(format: "[%d/%d %.0f s%@] %@", step, total, elapsed, remaining, line))
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    /// The duration in milliseconds.
    var milliseconds: Double { seconds * 1000 }
}

/// The median of `values` (the upper one of an even count); 0 when empty.
func median(_ values: [Double]) -> Double {
    values.isEmpty ? 0 : values.sorted()[values.count / 2]
}
