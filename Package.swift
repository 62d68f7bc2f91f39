// swift-tools-version: 6.0
import Foundation
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "moderation-platform",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "TritonClient", targets: ["TritonClient"]),
        .library(name: "Gateway", targets: ["Gateway"]),
        .executable(name: "moderation-gateway", targets: ["moderation-gateway"]),
        .executable(name: "triton-load", targets: ["triton-load"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.70.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.0"),
    ],
    targets: [
        // C libraries from Debian, through system-library targets.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        .target(
            name: "TritonClient",
            dependencies: [
                "CCurl",
                "CZlib",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Gateway",
            dependencies: [
                "TritonClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ],
            exclude: ["README.md", "Auth/README.md"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "moderation-gateway",
            dependencies: [
                "Gateway",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "triton-load",
            dependencies: [
                "TritonClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TritonClientTests",
            dependencies: ["TritonClient"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Gateway",
                "TritonClient",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)

// `scripts/fuzz` builds the libFuzzer targets with GATEWAY_FUZZ=1, in a build folder of its
// own (.build-fuzz): our two modules get coverage instrumentation and AddressSanitizer, and
// the executable (Tests/Fuzz/GatewayFuzz) hands its command line to libFuzzer's driver,
// which only that build links.
if ProcessInfo.processInfo.environment["GATEWAY_FUZZ"] == "1" {
    let fuzzing: [SwiftSetting] = [.unsafeFlags(["-sanitize=fuzzer,address"])]
    for target in package.targets where target.name == "TritonClient" || target.name == "Gateway" {
        target.swiftSettings = (target.swiftSettings ?? []) + fuzzing
    }
    package.targets.append(.executableTarget(
        name: "GatewayFuzz",
        dependencies: ["Gateway"],
        path: "Tests/Fuzz/GatewayFuzz",
        swiftSettings: swiftSettings + fuzzing,
        linkerSettings: [.unsafeFlags(["-sanitize=fuzzer,address"])]
    ))
    package.products.append(.executable(name: "gateway-fuzz", targets: ["GatewayFuzz"]))
}
