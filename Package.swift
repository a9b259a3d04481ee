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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/vapor/sqlite-kit.git", from: "4.5.2"),
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
        .target(
            name: "Persistence",
            dependencies: [
                "CaduceusCore",
                "Identity",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteKit", package: "sqlite-kit"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ControlPlane",
            dependencies: [
                "AuditLog",
                "CaduceusCore",
                "Identity",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "caduceus",
            dependencies: [
                "AuditLog",
                "CaduceusCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "CaduceusCoreTests", dependencies: ["CaduceusCore"], swiftSettings: strict),
        .testTarget(
            name: "ControlPlaneTests",
            dependencies: [
                "ControlPlane", "Persistence", "Identity", "AuditLog", "CaduceusCore",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PersistenceTests",
            dependencies: ["Persistence", "Identity", "CaduceusCore"],
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
            dependencies: ["caduceus", "AuditLog", "CaduceusCore"],
            swiftSettings: strict
        ),
    ]
)
