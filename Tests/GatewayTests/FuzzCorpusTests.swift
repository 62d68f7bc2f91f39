#if DEBUG
import Foundation
import Gateway
import Testing

/// Every seed of the fuzzing corpora (Tests/Fuzz/corpus/<target>/) and every input a
/// fuzzing run found to crash (Tests/Fuzz/regressions/<target>/, committed with its fix)
/// goes through its target on every test run, without libFuzzer: what once crashed stays
/// fixed. `scripts/fuzz` runs the instrumented targets themselves.
@Suite struct FuzzCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    static func inputs(_ kind: String, _ target: String) -> [URL] {
        let folder = root.appendingPathComponent(kind).appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { folder.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzTargets.names)
    func everySeedAndRegressionRunsThroughItsTarget(_ target: String) throws {
        let seeds = Self.inputs("corpus", target)
        #expect(!seeds.isEmpty, "Tests/Fuzz/corpus/\(target) has seeds")
        for file in seeds + Self.inputs("regressions", target) {
            let bytes = [UInt8](try Data(contentsOf: file))
            #expect(FuzzTargets.run(target, bytes), "\(file.lastPathComponent)")
        }
    }

    @Test func theSeedsReachPastTheFirstCheck() throws {
        // A corpus of inputs every parser refuses at once would leave the fuzzer nothing to
        // grow from: the shipped traffic file parses, the KServe seeds validate.
        let shipped = try Data(contentsOf: Self.root.appendingPathComponent("corpus/traffic/shipped"))
        #expect(throws: Never.self) { try TrafficConfiguration.parse(data: shipped) }
        for name in ["json-only", "binary-extension"] {
            let file = Self.root.appendingPathComponent("corpus/kserve/\(name)")
            #expect(FuzzTargets.kserveAccepts([UInt8](try Data(contentsOf: file))), "\(name) is a valid request")
        }
    }
}
#endif
