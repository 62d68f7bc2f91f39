import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Triton going away and coming back, with a Triton of our own (port 8320) so
/// the shared test servers are untouched.
@Suite(.enabled(if: Environment.tritonURL != nil, "needs the Triton runtime scripts/test prepares"), .serialized)
struct UpstreamRecoveryTests {
    /// TEST_PORT_BASE + 320 (scripts/test's port plan), so two checkouts testing at once
    /// each stop and restart their own Triton, never the other's.
    static let port = (Environment.value("TEST_PORT_BASE").flatMap { Int($0) } ?? 18000) + 320
    static let name = "gateway-recovery-test"

    func note(_ text: String) {
        print("[recovery-test \(Date())] \(text)")
    }

    func triton(_ arguments: [String]) async throws -> (Int32, String) {
        note("scripts/triton \(arguments.first ?? "")")
        return try await runProcess("/bin/bash", [Environment.projectRoot.appendingPathComponent("scripts/triton").path] + arguments)
    }

    func startTriton(repo: URL) async throws {
        let (rc, output) = try await triton([
            "start", "--name", Self.name, "--model-repo", repo.path, "--http-port", "\(Self.port)", "--grpc-port", "\(Self.port + 1)",
            "--metrics-port", "\(Self.port + 2)", "--timeout", "180",
        ])
        try #require(rc == 0, "triton start failed: \(output.suffix(1500))")
    }

    /// A repository with only `identity_fp32`, in the setup's directory.
    func identityRepo(_ setup: TestSetup) throws -> URL {
        let fixtureRepo = Environment.value("TRITON_FIXTURE_REPO").map { URL(fileURLWithPath: $0) }
            ?? Environment.projectRoot.appendingPathComponent("Tests/Fixtures/model-repo")
        let repo = setup.directory.appendingPathComponent("repo")
        try FileManager.default.createDirectory(at: repo, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: fixtureRepo.appendingPathComponent("identity_fp32"), to: repo.appendingPathComponent("identity_fp32"))
        return repo
    }

    /// The pid `scripts/triton start` recorded for this suite's Triton, checked to be a
    /// tritonserver serving this suite's port.
    func tritonPID() throws -> pid_t {
        let runtime = Environment.value("TRITON_RUNTIME").map { URL(fileURLWithPath: $0) }
            ?? Environment.projectRoot.appendingPathComponent(".triton")
        let text = try String(contentsOf: runtime.appendingPathComponent("run/\(Self.name).pid"), encoding: .utf8)
        let pid = try #require(pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        let arguments = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        try #require(arguments.first?.hasSuffix("tritonserver") == true, "pid \(pid) is not a tritonserver: \(arguments)")
        try #require(arguments.contains("--http-port=\(Self.port)"), "pid \(pid) does not serve port \(Self.port): \(arguments)")
        return pid
    }

    /// The scheduler states of every thread of `pid` (`/proc/PID/task/TID/stat`, the field
    /// after the parenthesised name).
    func threadStates(_ pid: pid_t) throws -> [Character] {
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")
        return tasks.compactMap { tid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            return stat[stat.index(after: close)...].first(where: { $0 != " " })
        }
    }

    /// Sends SIGSTOP and waits until every thread of the process has stopped. `kill`
    /// returns once the signal is queued: the thread that takes it starts the group stop
    /// when it next runs, and until then the others keep running. On a loaded machine that
    /// took long enough for Triton's HTTP thread to answer one more request (seen once).
    func stopProcess(_ pid: pid_t) async throws {
        try #require(kill(pid, SIGSTOP) == 0)
        let stopped = try await eventually(30) {
            let states = try threadStates(pid)
            return !states.isEmpty && states.allSatisfy { $0 == "T" }
        }
        let states = try threadStates(pid)
        try #require(stopped, "Triton's threads did not all stop within 30 s: \(states)")
    }

    /// The calls a test makes through its gateway.
    struct Calls: Sendable {
        let client: any TestClientProtocol
        let token: String

        func infer() async throws -> TestResponse {
            let body = Array(#"{"inputs":[{"name":"INPUT0","shape":[1,2],"datatype":"FP32","data":[1,2]}]}"#.utf8)
            return try await client.execute(
                uri: "/v2/models/identity_fp32/infer", method: .post,
                headers: fields([(.authorization, "Bearer \(token)"), (.contentType, "application/json")]), body: ByteBuffer(bytes: body))
        }

        func ready() async throws -> TestResponse {
            try await client.execute(uri: "/readyz", method: .get)
        }

        /// Whether an infer and `/readyz` both answer 200 within 30 s.
        func recovered() async throws -> Bool {
            try await eventually(30) {
                guard try await infer().status == .ok else { return false }
                return try await ready().status == .ok
            }
        }
    }

    /// Starts this suite's Triton on a repository with `identity_fp32` and runs `body`
    /// with a live gateway in front of it (the upstream deadline and circuit settings
    /// given); stops the Triton afterwards, whatever happens.
    func withOwnTriton(
        upstreamDeadline: Int, circuit: String? = nil, _ body: @Sendable (Calls, _ repo: URL) async throws -> Void
    ) async throws {
        let setup = try TestSetup()
        let repo = try identityRepo(setup)
        _ = try? await triton(["stop", "--name", Self.name])  // a leftover of an interrupted run
        try await startTriton(repo: repo)
        do {
            try await withGateway(setup, repo: repo, upstreamDeadline: upstreamDeadline, circuit: circuit, body)
        } catch {
            _ = try? await triton(["stop", "--name", Self.name])
            throw error
        }
        _ = try? await triton(["stop", "--name", Self.name])
    }

    /// A live gateway in front of this suite's Triton, for `body`.
    private func withGateway(
        _ setup: TestSetup, repo: URL, upstreamDeadline: Int, circuit: String?, _ body: @Sendable (Calls, _ repo: URL) async throws -> Void
    ) async throws {
        var overrides = [
            "routes": "routes:\n  default: moderation\n  models:\n    moderation:\n      model: identity_fp32\n",
            "readiness": "readiness:\n  cache_seconds: 0\n",
            "timeouts": "timeouts:\n  connect: 1\n  request: 120\n  upstream_deadline: \(upstreamDeadline)\n",
        ]
        if let circuit { overrides["upstream"] = circuit }
        let configuration = try setup.configuration(tritonURL: "http://127.0.0.1:\(Self.port)", overrides: overrides)
        let token = try setup.token()
        let app = try buildApplication(configuration: configuration, logger: quietLogger())
        try await app.test(.live) { client in
            let calls = Calls(client: client, token: token)
            #expect(try await calls.infer().status == .ok)
            #expect(try await calls.ready().status == .ok)
            note("serving")
            try await body(calls, repo)
        }
    }

    @Test func tritonStoppedMidTestThenBack() async throws {
        try await withOwnTriton(upstreamDeadline: 30, circuit: "upstream:\n  circuit_failure_threshold: 2\n  circuit_open_seconds: 1\n") { calls, repo in
            let (stopped, output) = try await triton(["stop", "--name", Self.name])
            try #require(stopped == 0, "\(output)")
            let clock = ContinuousClock()
            let start = clock.now
            note("stopped")
            let down = try await calls.infer()
            note("down: \(down.status)")
            // Fast means without waiting for the 30 s deadline (a loaded machine adds seconds, not tens).
            #expect(clock.now - start < .seconds(15), "connection refused is answered fast")
            #expect(down.status == .badGateway || down.status == .serviceUnavailable)
            #expect(try down.problem().instance == down.headers[.requestIDHeader])
            var sawOpenCircuit = false
            for _ in 0..<5 {
                let response = try await calls.infer()
                if response.status == .serviceUnavailable {
                    sawOpenCircuit = true
                    #expect(response.headers[.retryAfter] != nil)
                    break
                }
            }
            #expect(sawOpenCircuit, "the circuit opens after repeated connection failures")
            #expect(try await calls.ready().status == .serviceUnavailable)

            note("restarting")
            try await startTriton(repo: repo)
            note("restarted")
            #expect(try await calls.recovered(), "traffic resumes without restarting the gateway")
        }
    }

    /// A Triton that still accepts connections but answers nothing (SIGSTOP: the kernel
    /// completes TCP handshakes, the process reads nothing): calls end in 504 at the
    /// deadline, `/readyz` turns 503, and everything recovers when it runs again.
    @Test func tritonThatStopsAnsweringGives504AndNotReadyThenRecovers() async throws {
        try await withOwnTriton(upstreamDeadline: 2) { calls, _ in
            let pid = try tritonPID()
            defer { _ = kill(pid, SIGCONT) }  // whatever fails below, the stop that follows must reach it
            try await stopProcess(pid)
            note("Triton stopped with SIGSTOP (every thread in state T)")
            let clock = ContinuousClock()
            for _ in 0..<2 {
                let start = clock.now
                let hung = try await calls.infer()
                let waited = clock.now - start
                note("hung: \(hung.status) after \(waited)")
                #expect(hung.status == .gatewayTimeout)
                #expect(try hung.problem().type.hasSuffix("/upstream-timeout"))
                // Never before the deadline; after it, only as late as a loaded machine makes it
                // (nothing else would end the call: the stopped Triton never answers).
                #expect(waited >= .milliseconds(1900) && waited < .seconds(20), "answered at the 2 s deadline")
            }
            let ready = try await calls.ready()
            #expect(ready.status == .serviceUnavailable, "readiness fails once its probe goes unanswered")
            #expect(ready.headers[.retryAfter] != nil)

            #expect(kill(pid, SIGCONT) == 0)
            note("Triton continued")
            #expect(try await calls.recovered(), "traffic resumes when Triton answers again")
        }
    }
}
