import ArgumentParser
import Foundation
import TritonClient

/// Drives one model with N concurrent tasks on one client and prints throughput and latency as JSON.
@main
struct TritonLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "triton-load",
        abstract: "Load generator for a Triton model, built on TritonClient.")

    @Option(help: "Triton HTTP URL.") var url: String = "http://127.0.0.1:8000"
    @Option(help: "Model name.") var model: String
    @Option(help: "Model version (empty: server's choice).") var modelVersion: String = ""
    @Option(help: "Input tensor name.") var inputName: String = "INPUT0"
    @Option(help: "Input datatype: FP32 or BYTES.") var datatype: String = "FP32"
    @Option(help: "Elements per request (the input shape is [1, elements]).") var elements: Int = 1024
    @Option(help: "Bytes per BYTES element.") var bytesLength: Int = 16
    @Option(help: "Concurrent tasks.") var concurrency: Int = 1
    @Option(help: "Measured duration in seconds.") var durationSeconds: Double = 10
    @Option(help: "Warm-up before measuring, in seconds.") var warmupSeconds: Double = 1
    @Flag(inversion: .prefixedNo, help: "Use the binary tensor extension (--binary) or JSON (--json).")
    var binary: Bool = true
    @Flag(help: "Send tensors as JSON (same as --no-binary).") var json: Bool = false
    @Option(name: .customLong("header"), help: "Extra header K:V (repeatable).") var headers: [String] = []
    @Flag(
        inversion: .prefixedNo,
        help: "Run the load tasks on the client's own thread (client.executor) rather than Swift's default pool.")
    var clientThread: Bool = true

    func validate() throws {
        guard concurrency > 0, elements > 0, durationSeconds > 0, warmupSeconds >= 0 else {
            throw ValidationError("concurrency, elements and duration must be positive")
        }
        guard TritonDataType(rawValue: datatype.uppercased()) == .fp32 || datatype.uppercased() == "BYTES" else {
            throw ValidationError("--datatype must be FP32 or BYTES")
        }
    }

    func run() async throws {
        var configuration = InferenceServerClient.Configuration()
        configuration.maxConnectionsPerHost = max(concurrency, 1)
        for header in headers {
            guard let colon = header.firstIndex(of: ":") else { throw ValidationError("--header wants K:V, got \(header)") }
            configuration.headers.append((
                String(header[..<colon]).trimmingCharacters(in: .whitespaces),
                String(header[header.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
        }
        let client = try InferenceServerClient(url: url, configuration: configuration)
        let input = try makeInput()
        let outputs = [InferRequestedOutput(name: "OUTPUT0", binaryData: binary && !json)]
        let version = modelVersion.isEmpty ? nil : modelVersion

        let clock = ContinuousClock()
        let start = clock.now
        let measureFrom = start + .milliseconds(Int(warmupSeconds * 1000))
        let stopAt = measureFrom + .milliseconds(Int(durationSeconds * 1000))

        let perTask = try await withTaskExecutorPreference(clientThread ? client.executor : nil) {
          try await withThrowingTaskGroup(of: (latencies: [Int64], errors: Int).self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var latencies: [Int64] = []
                    latencies.reserveCapacity(Int(durationSeconds * 2000))
                    var errors = 0
                    while true {
                        let began = clock.now
                        if began >= stopAt { break }
                        var failed = false
                        do {
                            _ = try await client.infer(model, inputs: [input], outputs: outputs, version: version)
                        } catch {
                            failed = true
                        }
                        let ended = clock.now
                        guard began >= measureFrom, ended <= stopAt else { continue }
                        if failed {
                            errors += 1
                        } else {
                            let (s, atto) = (ended - began).components
                            latencies.append(s * 1_000_000 + atto / 1_000_000_000_000)
                        }
                    }
                    return (latencies, errors)
                }
            }
            var all: [(latencies: [Int64], errors: Int)] = []
            for try await result in group { all.append(result) }
            return all
          }
        }
        var latencies = perTask.flatMap(\.latencies)
        let errors = perTask.reduce(0) { $0 + $1.errors }
        latencies.sort()
        func percentile(_ p: Double) -> Int64 {
            guard !latencies.isEmpty else { return 0 }
            let index = min(latencies.count - 1, Int((p * Double(latencies.count)).rounded(.up)) - 1)
            return latencies[max(index, 0)]
        }
        let report: [String: Any] = [
            "throughput": Double(latencies.count) / durationSeconds,
            "p50_us": percentile(0.50),
            "p90_us": percentile(0.90),
            "p99_us": percentile(0.99),
            "count": latencies.count,
            "errors": errors,
            "concurrency": concurrency,
        ]
        let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    private func makeInput() throws -> InferInput {
        var input: InferInput
        if datatype.uppercased() == "BYTES" {
            input = InferInput(name: inputName, shape: [1, Int64(elements)], datatype: .bytes)
            let element = String(repeating: "x", count: bytesLength)
            try input.setData([String](repeating: element, count: elements))
        } else {
            input = InferInput(name: inputName, shape: [1, Int64(elements)], datatype: .fp32)
            try input.setData((0..<elements).map { Float($0) })
        }
        input.binaryData = binary && !json
        return input
    }
}
