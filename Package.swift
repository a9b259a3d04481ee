// swift-tools-version:6.2
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "caduceus",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "caduceus", targets: ["caduceus"]),
        .library(name: "AuditLog", targets: ["AuditLog"]),
        .executable(name: "caduceus-gpu", targets: ["caduceus-gpu"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/sqlite-kit.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-kit.git", from: "2.17.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        .target(name: "CaduceusCore", swiftSettings: strict),
        .target(name: "CSHA256", cSettings: [.unsafeFlags(["-O3"])]),
        .target(
            name: "AuditLog",
            dependencies: [
                "CaduceusCore",
                "CSHA256",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Identity",
            dependencies: [
                "CaduceusCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .target(name: "Scheduling", dependencies: ["CaduceusCore"], swiftSettings: strict),
        .target(
            name: "Sealing",
            dependencies: ["CaduceusCore", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .target(name: "NodeAgent", dependencies: ["CaduceusCore"], swiftSettings: strict),
        .executableTarget(name: "caduceus-gpu", dependencies: ["CaduceusCore", "NodeAgent"], swiftSettings: strict),
        .target(
            name: "Persistence",
            dependencies: [
                "AuditLog",
                "CaduceusCore",
                "Identity",
                "Scheduling",
                "Sealing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteKit", package: "sqlite-kit"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ControlPlane",
            dependencies: [
                "AuditLog",
                "CaduceusCore",
                "Identity",
                "Scheduling",
                "Sealing",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ControlPlaneHTTP",
            dependencies: [
                "AuditLog",
                "CaduceusCore",
                "ControlPlane",
                "Identity",
                "Persistence",
                "Scheduling",
                "Sealing",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "EmbeddedAgent",
            dependencies: [
                "CaduceusCore", "ControlPlane", "NodeAgent", "Scheduling",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "RemoteAgent",
            dependencies: [
                "CaduceusCore", "ControlPlane", "EmbeddedAgent", "NodeAgent", "Scheduling", "Sealing",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SlurmExecutor",
            dependencies: [
                "CaduceusCore", "ControlPlane", "Scheduling",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "CaduceusTesting",
            dependencies: [
                "AuditLog", "CaduceusCore", "ControlPlane", "Identity", "Persistence", "Scheduling", "Sealing",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "caduceus",
            dependencies: [
                "AuditLog",
                "CaduceusCore",
                "ControlPlane",
                "ControlPlaneHTTP",
                "EmbeddedAgent",
                "Identity",
                "NodeAgent",
                "RemoteAgent",
                "Scheduling",
                "Sealing",
                "SlurmExecutor",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "CaduceusCoreTests", dependencies: ["CaduceusCore"], swiftSettings: strict),
        .testTarget(name: "SchedulingTests", dependencies: ["Scheduling", "CaduceusCore"], swiftSettings: strict),
        .testTarget(
            name: "SealingTests",
            dependencies: ["Sealing", "CaduceusCore", .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Vectors"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SlurmExecutorTests", dependencies: ["SlurmExecutor", "ControlPlane", "CaduceusCore", "Scheduling"],
            swiftSettings: strict),
        .testTarget(name: "NodeAgentTests", dependencies: ["NodeAgent", "CaduceusCore"], swiftSettings: strict),
        .testTarget(
            name: "EmbeddedAgentTests",
            dependencies: [
                "EmbeddedAgent", "NodeAgent", "ControlPlane", "CaduceusTesting", "CaduceusCore", "Scheduling",
                "AuditLog", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ControlPlaneTests",
            dependencies: [
                "ControlPlane", "Persistence", "Identity", "AuditLog", "CaduceusCore", "CaduceusTesting",
                "Scheduling", "Sealing",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SQLKit", package: "sql-kit"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ControlPlaneHTTPTests",
            dependencies: [
                "ControlPlaneHTTP", "ControlPlane", "Identity", "AuditLog", "CaduceusCore", "CaduceusTesting",
                "Persistence",
                "Scheduling", "Sealing",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PersistenceTests",
            dependencies: ["Persistence", "Identity", "CaduceusCore", "CaduceusTesting", "Scheduling"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IdentityTests",
            dependencies: ["Identity", "CaduceusCore"],
            exclude: ["Vectors"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AuditLogTests",
            dependencies: ["AuditLog", "CaduceusCore", .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Vectors"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CLITests",
            dependencies: [
                "caduceus", "AuditLog", "CaduceusCore", "CaduceusTesting", "Identity", "Persistence", "Scheduling",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
    ]
)
