// swift-tools-version:6.1
//
// Cohort: a secure client-server group communication system and a research framework for
// comparing security architectures of such systems. See README.md and docs/.
//
// Layering is one-way (../shared/DESIGN.md §2): pure cores ← strategies ← shells ← executables.
// `CohortCore` imports nothing beyond the standard library: no NIO, no Foundation networking,
// no clock.

import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// The protocol cores and the simulator are optimised in debug builds too: `swift test` runs
/// hundreds of simulated seeds (EVS and VS), several times faster optimised. (Preconditions
/// still hold at -O; the test build keeps `-enable-testing`.)
let optimisedInDebug: [SwiftSetting] = strictSettings + [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "cohort",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "CohortCore", targets: ["CohortCore"]),
        .library(name: "CohortCrypto", targets: ["CohortCrypto"]),
        .library(name: "CohortSimulation", targets: ["CohortSimulation"]),
        .library(name: "CohortSecurity", targets: ["CohortSecurity"]),
        .library(name: "CohortTransport", targets: ["CohortTransport"]),
        .library(name: "CohortConfiguration", targets: ["CohortConfiguration"]),
        .library(name: "CohortDaemon", targets: ["CohortDaemon"]),
        .library(name: "CohortCluster", targets: ["CohortCluster"]),
        .library(name: "Cohort", targets: ["Cohort"]),
        .executable(name: "cohortd", targets: ["cohortd"]),
        .executable(name: "cohort", targets: ["cohort"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
    ],
    targets: [
        // Pure protocol cores: identifiers, limits, wire codec, group table, daemon core, the
        // daemons' membership and ordering protocol (Totem ring), groups across daemons.
        .target(name: "CohortCore", swiftSettings: optimisedInDebug),

        // OpenSSL's libcrypto (libssl-dev), with small C shims of our own.
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        // GMP (libgmp-dev), with inline wrappers for its mpz_* macros.
        .systemLibrary(name: "CGMP", pkgConfig: "gmp", providers: [.apt(["libgmp-dev"])]),

        // Cipher suites, key derivation, DH groups, and (next) the key agreement protocols.
        .target(
            name: "CohortCrypto",
            dependencies: ["CohortCore", "COpenSSL", "CGMP", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSettings
        ),

        // Drivers that run the pure cores in memory — the deterministic multi-daemon simulator with
        // fault injection, the key agreement simulation — and the property checkers.
        .target(name: "CohortSimulation", dependencies: ["CohortCore", "CohortCrypto", "CohortSecurity"], swiftSettings: optimisedInDebug),

        // Security strategies: authentication methods, and their composition into named
        // architectures (today: `plain`).
        .target(
            name: "CohortSecurity",
            dependencies: [
                "CohortCore", "CohortCrypto",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),

        // glibc's allocator settings (mallopt), for the executables' heap tuning.
        .systemLibrary(name: "CMalloc"),

        // Byte-moving helpers shared by the daemon and client shells: framing, addresses, the
        // executables' heap tuning.
        .target(
            name: "CohortTransport",
            dependencies: ["CohortCore", "CMalloc", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),

        // The daemon configuration file (YAML) and its membership defaults, without the NIO
        // shell: the tools that write configurations and the message-path benchmark use it.
        .target(
            name: "CohortConfiguration",
            dependencies: ["CohortCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strictSettings
        ),

        // SwiftNIO shell of the daemon: sockets, timers, metrics, lifecycle.
        .target(
            name: "CohortDaemon",
            dependencies: [
                "CohortConfiguration",
                "CohortCore",
                "CohortSecurity",
                "CohortTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),

        // Client library: async/await API over TCP (optionally TLS) or a Unix domain socket.
        .target(
            name: "Cohort",
            dependencies: [
                "CohortCore",
                "CohortSecurity",
                "CohortTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),

        // Local clusters of real daemon processes: `cohort cluster`, demos, experiments, tests.
        .target(
            name: "CohortCluster",
            dependencies: [
                "Cohort",
                "CohortConfiguration",
                "CohortCore",
                "CohortCrypto",
                "CohortSecurity",
                "CohortTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),

        .executableTarget(
            name: "cohortd",
            dependencies: [
                "CohortConfiguration",
                "CohortDaemon",
                "CohortSecurity",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "cohort",
            dependencies: [
                "Cohort",
                "CohortCluster",
                "CohortConfiguration",
                "CohortCore",
                "CohortCrypto",
                "CohortDaemon",
                "CohortSecurity",
                "CohortSimulation",
                "CohortTransport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),

        // Experiments: executables that print figures and write them to Results/.
        .executableTarget(
            name: "cohort-crypto-bench",
            dependencies: ["CohortCrypto", "CohortCore", "COpenSSL"],
            path: "Experiments/CryptoBenchmark",
            swiftSettings: strictSettings
        ),

        .executableTarget(
            name: "cohort-key-agreement-bench",
            dependencies: ["CohortCrypto", "CohortCore", "CohortSimulation"],
            path: "Experiments/KeyAgreementBenchmark",
            swiftSettings: strictSettings
        ),

        // The experiment runner: named experiments on local clusters of real daemon processes,
        // writing Results/<experiment>/<name>.csv and meta.json.
        .executableTarget(
            name: "cohort-experiments",
            dependencies: [
                "Cohort",
                "CohortCluster",
                "CohortConfiguration",
                "CohortCore",
                "CohortSecurity",
                "CohortSimulation",
                "CohortTransport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Experiments/Runner",
            swiftSettings: strictSettings
        ),

        // The CPU cost of the message path, three daemon cores wired in memory (no sockets).
        .executableTarget(
            name: "cohort-path-bench",
            dependencies: ["CohortConfiguration", "CohortCore", "CohortCrypto", "CohortSecurity"],
            path: "Experiments/MessagePathBenchmark",
            swiftSettings: strictSettings
        ),

        .testTarget(name: "CohortCoreTests", dependencies: ["CohortCore"], swiftSettings: strictSettings),
        .testTarget(name: "CohortSimulationTests", dependencies: ["CohortSimulation", "CohortCore", "CohortSecurity"], swiftSettings: strictSettings),
        .testTarget(name: "CohortSecurityTests", dependencies: ["CohortSecurity", "CohortCore", "CohortCrypto", "CohortSimulation"], swiftSettings: strictSettings),
        .testTarget(name: "CohortCryptoTests", dependencies: ["CohortCrypto", "CohortCore", "CohortSimulation", "CGMP"], swiftSettings: strictSettings),
        .testTarget(
            name: "CohortEndToEndTests",
            dependencies: [
                "Cohort",
                "CohortCluster",
                "CohortConfiguration",
                "CohortCore",
                "CohortCrypto",
                "CohortSimulation",
                "CohortDaemon",
                "CohortSecurity",
                "CohortTransport",
                "CMalloc",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
