// Cipher suite cost against raw OpenSSL EVP, measured in one run.
//
//   swift run -c release cohort-crypto-bench [--rounds R] [--output Results/crypto]
//
//   Part 1, cipher suites. For each suite and message size (1 KiB, 64 KiB): the median over R rounds of the time per
// seal and per open through the suite (`CipherSuite`, contexts reused per key), and of the same
// operation written directly against EVP with a reused context (the floor). For Blowfish the
// floor is EVP BF-CBC plus EVP_MAC HMAC-SHA256, the same work the suite does. Rounds alternate
// suite and raw so that machine noise hits both alike; the ratio is what matters.
//
//   Part 2, DH groups. For each MODP group on each backend (GMP, OpenSSL BN) and for X25519:
// the median time of one exponentiation with a fresh 256-bit exponent (what the protocols do
// most) and with a full-width exponent (what GDH's factor-out produces). Written to
// Results/crypto/dh-groups.csv.
//
//   Part 3, group key derivation (what a daemon does per group view in the integrated
// architectures): K_{g,i} from the daemons' key (`GroupKeyDerivation`, one HMAC), then per
// suite the suite's key material from it (HKDF-SHA256) and a keyed suite (`init(keyMaterial:)`:
// cipher and MAC contexts). Medians of R rounds. Written to Results/crypto/key-derivation.csv.
//
//   Part 4, authentication: SCRAM-SHA-256's client side (PBKDF2 at 4,096 and 100,000 iterations)
// and daemon side (one exchange, which needs no PBKDF2), and the Ed25519 signature and check of a
// daemon link hello. Written to Results/crypto/authentication.csv.
import COpenSSL
import CohortCore
import CohortCrypto
import Foundation

struct Options {
    var rounds = 15
    var output = "Results/crypto"
    init(arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--rounds": rounds = Int(iterator.next() ?? "") ?? rounds
            case "--output": output = iterator.next() ?? output
            default: fatalError("unknown argument \(argument); use --rounds R --output DIR")
            }
        }
    }
}

/// Nanoseconds per call of `body`, over enough calls to take about 20 ms.
func nanosecondsPerCall(_ body: () -> Void) -> Double {
    var calls = 16
    while true {
        let start = ContinuousClock.now
        for _ in 0..<calls { body() }
        let elapsed = ContinuousClock.now - start
        let nanoseconds = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        if nanoseconds > 20e6 { return nanoseconds / Double(calls) }
        calls *= 2
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// The floor: an EVP AEAD seal with a reused, keyed context (only the nonce is set per call).
final class RawAEAD {
    let context = EVP_CIPHER_CTX_new()!
    var tag = [UInt8](repeating: 0, count: 16)
    init(cipher: OpaquePointer, key: [UInt8]) { precondition(EVP_EncryptInit_ex(context, cipher, nil, key, nil) == 1) }
    deinit { EVP_CIPHER_CTX_free(context) }
    func seal(_ plaintext: [UInt8], nonce: [UInt8], associatedData: [UInt8], into output: inout [UInt8]) {
        var length: Int32 = 0
        EVP_EncryptInit_ex(context, nil, nil, nil, nonce)
        EVP_EncryptUpdate(context, nil, &length, associatedData, Int32(associatedData.count))
        EVP_EncryptUpdate(context, &output, &length, plaintext, Int32(plaintext.count))
        var final: Int32 = 0
        output.withUnsafeMutableBufferPointer { _ = EVP_EncryptFinal_ex(context, $0.baseAddress! + Int(length), &final) }
        EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, 16, &tag)
    }
}

/// The floor for Blowfish-CBC + HMAC-SHA256: EVP BF-CBC and one HMAC over the ciphertext.
final class RawBlowfishHMAC {
    let context = EVP_CIPHER_CTX_new()!
    let mac = cohort_hmac_new()!
    var code = [UInt8](repeating: 0, count: 32)
    init(key: [UInt8]) {
        precondition(cohort_load_legacy_and_default_providers() == 1)
        let cipher = EVP_CIPHER_fetch(nil, "BF-CBC", nil)!
        precondition(EVP_EncryptInit_ex(context, cipher, nil, nil, nil) == 1)
        precondition(EVP_CIPHER_CTX_set_key_length(context, 16) == 1)
        precondition(EVP_EncryptInit_ex(context, nil, nil, Array(key.prefix(16)), nil) == 1)
        precondition(cohort_hmac_sha256_init(mac, Array(key.suffix(32)), 32) == 1)
    }
    deinit {
        EVP_CIPHER_CTX_free(context)
        EVP_MAC_CTX_free(mac)
    }
    func seal(_ plaintext: [UInt8], iv: [UInt8], into output: inout [UInt8]) {
        var length: Int32 = 0
        EVP_EncryptInit_ex(context, nil, nil, nil, iv)
        EVP_EncryptUpdate(context, &output, &length, plaintext, Int32(plaintext.count))
        var final: Int32 = 0
        output.withUnsafeMutableBufferPointer { _ = EVP_EncryptFinal_ex(context, $0.baseAddress! + Int(length), &final) }
        EVP_MAC_init(mac, nil, 0, nil)
        output.withUnsafeBufferPointer { _ = EVP_MAC_update(mac, $0.baseAddress, Int(length + final)) }
        var macLength = 0
        EVP_MAC_final(mac, &code, &macLength, 32)
    }
}

let options = Options(arguments: CommandLine.arguments)
let sizes = [1024, 64 * 1024]
var rows = ["suite,size,operation,suite_ns,raw_ns,ratio"]
func padded(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
print(padded("suite", 26) + padded("size", 8) + padded("suite ns", 11) + padded("raw ns", 11) + "ratio")
for suiteType in CipherSuites.registered {
    let key = (0..<suiteType.keyMaterialBytes).map { UInt8(truncatingIfNeeded: $0 &* 13) }
    let suite = try suiteType.init(keyMaterial: key)
    for size in sizes {
        let plaintext = [UInt8](repeating: 0x61, count: size)
        let associatedData = [UInt8](repeating: 0x62, count: 16 + 8)
        var sealed: [UInt8] = []
        var counter: UInt64 = 0
        var rawOutput = [UInt8](repeating: 0, count: size + 64)
        let sealThroughSuite = {
            counter &+= 1
            sealed.removeAll(keepingCapacity: true)
            try! plaintext.withUnsafeBytes { plaintext in
                try associatedData.withUnsafeBytes { associatedData in
                    try suite.seal(plaintext, nonce: Nonce(sender: 1, counter: counter), associatedData: associatedData, into: &sealed)
                }
            }
        }
        let rawSeal: () -> Void
        switch suiteType.name {
        case AES256GCM.name, ChaCha20Poly1305.name:
            let raw = RawAEAD(cipher: suiteType.name == AES256GCM.name ? EVP_aes_256_gcm() : EVP_chacha20_poly1305(), key: key)
            rawSeal = {
                counter &+= 1
                raw.seal(plaintext, nonce: Nonce(sender: 1, counter: counter).bytes, associatedData: associatedData, into: &rawOutput)
            }
        default:
            let raw = RawBlowfishHMAC(key: key)
            let iv = [UInt8](repeating: 7, count: 8)
            rawSeal = { raw.seal(plaintext, iv: iv, into: &rawOutput) }
        }
        var suiteTimes: [Double] = []
        var rawTimes: [Double] = []
        for _ in 0..<options.rounds {
            suiteTimes.append(nanosecondsPerCall(sealThroughSuite))
            rawTimes.append(nanosecondsPerCall(rawSeal))
        }
        let (suiteNanoseconds, rawNanoseconds) = (median(suiteTimes), median(rawTimes))
        let ratio = suiteNanoseconds / rawNanoseconds
        rows.append("\(suiteType.name),\(size),seal,\(Int(suiteNanoseconds)),\(Int(rawNanoseconds)),\(String(format: "%.3f", ratio))")
        print(padded(suiteType.name, 26) + padded("\(size)", 8) + padded("\(Int(suiteNanoseconds))", 11)
              + padded("\(Int(rawNanoseconds))", 11) + String(format: "%.2f", ratio))

        // Open through the suite (no raw counterpart needed: it mirrors seal). Seal once more
        // with a known nonce first: the raw loop advanced the shared counter.
        let nonce = Nonce(sender: 2, counter: 0)
        sealed.removeAll(keepingCapacity: true)
        try plaintext.withUnsafeBytes { plaintext in
            try associatedData.withUnsafeBytes { associatedData in
                try suite.seal(plaintext, nonce: nonce, associatedData: associatedData, into: &sealed)
            }
        }
        let openTimes = (0..<options.rounds).map { _ in
            nanosecondsPerCall {
                _ = try! sealed.withUnsafeBytes { sealed in
                    try associatedData.withUnsafeBytes { associatedData in
                        try suite.open(sealed, nonce: nonce, associatedData: associatedData)
                    }
                }
            }
        }
        rows.append("\(suiteType.name),\(size),open,\(Int(median(openTimes))),,")
    }
}

// MARK: - Part 2: DH groups

var dhRows = ["group,backend,exponent_bits,microseconds"]
print("")
print(padded("group", 12) + padded("backend", 14) + padded("exponent", 10) + "µs per exponentiation")
var random = SeededRandom(seed: 0x1234_5678)
var groups: [(any DHGroup, String)] = []
for bits in [1024, 2048, 3072] {
    for backend in ModularArithmeticBackend.allCases { groups.append((try MODPGroup(bits: bits, backend: backend), backend.rawValue)) }
}
groups.append((X25519Group(), "swift-crypto"))
for (group, backend) in groups {
    let base = try group.power(group.generator, group.randomExponent(using: &random))
    var exponents: [(Exponent, Int)] = [(group.randomExponent(using: &random), 256)]
    if let modp = group as? MODPGroup {
        exponents.append((try modp.invertExponent(exponents[0].0), modp.elementBytes * 8))
    }
    for (exponent, exponentBits) in exponents {
        let times = (0..<max(3, options.rounds / 3)).map { _ in nanosecondsPerCall { _ = try! group.power(base, exponent) } }
        let microseconds = median(times) / 1000
        dhRows.append("\(group.name),\(backend),\(exponentBits),\(String(format: "%.1f", microseconds))")
        print(padded(group.name, 12) + padded(backend, 14) + padded("\(exponentBits)", 10) + String(format: "%.1f", microseconds))
    }
}

// MARK: - Part 3: group key derivation

/// Rows of key-derivation.csv: nanoseconds per derivation, median of `rounds`.
func measureKeyDerivation(rounds: Int) throws -> [String] {
    var rows = ["step,suite,nanoseconds"]
    print("")
    print(padded("step", 34) + padded("suite", 26) + "ns")
    let derivation = try GroupKeyDerivation(serverKey: [UInt8](repeating: 0x5A, count: 32))
    let group = try GroupName("experiment-group")
    // A fresh view id per derivation, as at each view change.
    var sequence: UInt64 = 0
    func nextViewID() -> GroupViewID {
        sequence += 1
        return GroupViewID(configuration: ConfigurationID(epoch: 7, representative: "d1"), sequence: sequence)
    }
    let groupKey = median((0..<rounds).map { _ in nanosecondsPerCall { _ = derivation.groupKey(group: group, viewID: nextViewID()) } })
    rows.append("group-key,,\(Int(groupKey))")
    print(padded("group key K_{g,i} (HMAC)", 34) + padded("", 26) + "\(Int(groupKey))")
    for suiteType in CipherSuites.registered {
        let nanoseconds = median((0..<rounds).map { _ in
            nanosecondsPerCall {
                let key = derivation.groupKey(group: group, viewID: nextViewID())
                _ = try! suiteType.init(keyMaterial: try! HKDF.keyMaterial(for: suiteType, secret: key))
            }
        })
        rows.append("group-key+hkdf+keyed-suite,\(suiteType.name),\(Int(nanoseconds))")
        print(padded("group key + HKDF + keyed suite", 34) + padded(suiteType.name, 26) + "\(Int(nanoseconds))")
    }
    return rows
}
let derivationRows = try measureKeyDerivation(rounds: options.rounds)

// MARK: - Part 4: authentication

/// Rows of authentication.csv: nanoseconds per step, median of `rounds` (fewer for PBKDF2).
func measureAuthentication(rounds: Int) throws -> [String] {
    var rows = ["step,iterations,nanoseconds"]
    print("")
    print(padded("authentication step", 52) + padded("iterations", 12) + "ns")
    func row(_ step: String, _ iterations: Int?, _ nanoseconds: Double) {
        rows.append("\(step),\(iterations.map(String.init) ?? ""),\(Int(nanoseconds))")
        print(padded(step, 52) + padded(iterations.map(String.init) ?? "", 12) + "\(Int(nanoseconds))")
    }
    let nonce = String(repeating: "n", count: 24)
    for iterations in [SCRAM.minimumIterations, SCRAM.defaultIterations] {
        let verifier = try SCRAM.Verifier(password: "wonderland", salt: Array("0123456789abcdef".utf8), iterations: iterations)
        // One exchange's messages, made once: the client's proof for this server nonce.
        var client = SCRAM.Client(username: "alice", password: "wonderland", nonce: nonce)
        let clientFirst = client.firstMessage()
        var server = SCRAM.Server(nonce: nonce, decoySecret: [1])
        let serverFirst = try server.firstMessage(answering: clientFirst) { _ in verifier }
        let clientFinal = try client.finalMessage(answering: serverFirst)
        // Client: the final message (PBKDF2 with the verifier's iterations, then HMACs).
        let clientRounds = max(3, rounds / (iterations > 10_000 ? 5 : 1))
        row("client: final message (PBKDF2 + proof)", iterations, median((0..<clientRounds).map { _ in
            nanosecondsPerCall {
                var fresh = SCRAM.Client(username: "alice", password: "wonderland", nonce: nonce)
                _ = fresh.firstMessage()
                _ = try! fresh.finalMessage(answering: serverFirst)
            }
        }))
        // Daemon: both of its messages for one exchange (no PBKDF2: it holds the verifier).
        row("daemon: first + final message (one exchange)", iterations, median((0..<rounds).map { _ in
            nanosecondsPerCall {
                var fresh = SCRAM.Server(nonce: nonce, decoySecret: [1])
                _ = try! fresh.firstMessage(answering: clientFirst) { _ in verifier }
                _ = try! fresh.finalMessage(answering: clientFinal)
            }
        }))
    }
    // Daemon authentication: sign and verify a link hello's bytes (about 80 bytes).
    let key = SigningKey.generate()
    let hello = [UInt8](repeating: 0x42, count: 80)
    let signature = try key.signature(for: hello)
    row("daemon link hello: Ed25519 sign", nil, median((0..<rounds).map { _ in nanosecondsPerCall { _ = try! key.signature(for: hello) } }))
    row("daemon link hello: Ed25519 verify", nil, median((0..<rounds).map { _ in
        nanosecondsPerCall { _ = SigningKey.isValid(signature: signature, for: hello, publicKey: key.publicKeyBytes) }
    }))
    return rows
}
let authenticationRows = try measureAuthentication(rounds: options.rounds)

try FileManager.default.createDirectory(atPath: options.output, withIntermediateDirectories: true)
try (derivationRows.joined(separator: "\n") + "\n").write(toFile: options.output + "/key-derivation.csv", atomically: true, encoding: .utf8)
try (authenticationRows.joined(separator: "\n") + "\n").write(toFile: options.output + "/authentication.csv", atomically: true, encoding: .utf8)
try (dhRows.joined(separator: "\n") + "\n").write(toFile: options.output + "/dh-groups.csv", atomically: true, encoding: .utf8)
try (rows.joined(separator: "\n") + "\n").write(toFile: options.output + "/cipher-suites.csv", atomically: true, encoding: .utf8)
let revision = (try? String(contentsOfFile: ".git/HEAD", encoding: .utf8)).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? "unknown"
let meta: [String: Any] = [
    "experiment": "cipher-suites", "date": ISO8601DateFormatter().string(from: Date()),
    "cores": ProcessInfo.processInfo.activeProcessorCount, "rounds": options.rounds, "sizes": sizes,
    "git_head": revision, "openssl": String(cString: OpenSSL_version(OPENSSL_VERSION)),
    "loadavg": (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "",
]
try JSONSerialization.data(withJSONObject: meta, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: options.output + "/meta.json"))
print("wrote \(options.output)/cipher-suites.csv, dh-groups.csv, key-derivation.csv, authentication.csv and meta.json")
