import CCurl
import Foundation

/// What the transport sends: a fully formed HTTP request.
struct TransportRequest: Sendable {
    var method: String
    var url: String
    var headers: [(String, String)]
    var body: [UInt8]
    var timeout: Duration?
    /// `Accept-Encoding` libcurl should offer and transparently decode; `nil` passes bodies as they come.
    var acceptEncoding: String?
    /// Suppress libcurl's own `Accept` and `Content-Type` defaults (raw passthrough sends only what it is given).
    var suppressDefaultHeaders: Bool
}

/// What the transport returns: Triton's answer as received (body decoded if `acceptEncoding` was set).
struct TransportResponse: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    /// The value of the first header named `name` (case-insensitive).
    func header(_ name: String) -> String? {
        headers.first(where: { asciiCaseInsensitiveEquals($0.0.utf8, name) })?.1
    }
}

/// Owns one libcurl easy handle and frees it when released.
final class CurlEasyHandle {
    let raw: UnsafeMutableRawPointer

    init?() {
        guard let handle = curl_easy_init() else { return nil }
        raw = handle
    }

    deinit { curl_easy_cleanup(raw) }
}

/// Owns one `curl_slist` of request headers; kept alive by its ``CurlTransfer`` as long as the handle uses it.
final class CurlHeaderList {
    private(set) var raw: UnsafeMutablePointer<curl_slist>? = nil

    func append(_ line: String) -> Bool {
        guard let next = curl_slist_append(raw, line) else { return false }
        raw = next
        return true
    }

    deinit { curl_slist_free_all(raw) }
}

/// One HTTP exchange in flight. Created by a caller, then touched only on the curl thread.
final class CurlTransfer: @unchecked Sendable {
    let request: TransportRequest
    var continuation: CheckedContinuation<TransportResponse, any Error>?

    // Guarded by the loop's lock.
    var cancelRequested = false

    // Curl thread only.
    var easy: CurlEasyHandle?
    var headerList: CurlHeaderList?
    var bodyStorage: UnsafeMutableRawBufferPointer?
    let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    var responseHeaders: [(String, String)] = []
    var responseBody: [UInt8] = []
    var maxResponseBytes = Int.max
    var responseTooLarge = false
    var finished = false

    init(request: TransportRequest) {
        self.request = request
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        bodyStorage?.deallocate()
        errorBuffer.deallocate()
    }

    func finish(_ result: Result<TransportResponse, any Error>) {
        guard !finished else { return }
        finished = true
        continuation?.resume(with: result)
        continuation = nil
    }
}

/// The libcurl settings every easy handle of one client gets.
struct CurlSettings: Sendable {
    var connectTimeoutMS: Int
    var defaultTimeout: Duration?
    var maxConnectionsPerHost: Int
    var httpVersion: Int
    var http2: Bool
    var caFile: String?
    var certificateFile: String?
    var privateKeyFile: String?
    var verifyPeer: Bool
    var verifyHost: Bool
    var verbose: Bool
    var maxResponseBytes: Int = 1 << 30

    /// libcurl before 8.0 breaks a reused HTTP/2 prior-knowledge connection ("Error in the
    /// HTTP2 framing layer", curl/curl#10634, fixed in 8.0.0), so there each call gets a fresh one.
    var forbidReuse: Bool {
        guard httpVersion == 5, let info = curl_version_info(CURLVERSION_ELEVENTH) else { return false }
        return info.pointee.version_num < 0x08_00_00
    }
}

private let curlGlobalInit: Bool = {
    // CURL_GLOBAL_ALL (SSL | WIN32).
    curl_global_init(3) == CURLE_OK
}()

/// One curl multi handle driven by one dedicated thread.
///
/// All libcurl calls happen on that thread; callers hand transfers over through a locked
/// queue and `curl_multi_wakeup`, and get their answer through a continuation. The multi
/// handle's connection cache is what keeps connections alive across calls.
///
/// The loop is also a `TaskExecutor`: tasks that prefer it run their jobs on the curl thread
/// between transfers, so a call made from such a task neither wakes another thread to start
/// its transfer nor waits for a pool thread to be woken when the answer arrives.
/// The thread is only woken (`curl_multi_wakeup`) when it sleeps in `curl_multi_poll`.
final class CurlMultiLoop: TaskExecutor, @unchecked Sendable {
    private let multi: UnsafeMutableRawPointer
    private let settings: CurlSettings
    private let forbidReuse: Bool
    private let lock = NSLock()
    private var pending: [CurlTransfer] = []
    private var cancellations: [CurlTransfer] = []
    private var jobs: [UnownedJob] = []
    private var shuttingDown = false
    /// True while the curl thread is (about to be) blocked in `curl_multi_poll` and no
    /// one has woken it yet: the first caller to queue work wakes it, later ones need not.
    private var sleeping = false
    /// The curl thread, once it runs (for ``isCurrentThread``).
    private var thread: pthread_t?
    /// Polls that ended with work queued by a caller who did not wake the thread: each one
    /// is a call that waited for the poll's timeout. Always 0 unless the wakeup protocol
    /// is broken; tests read it instead of timing calls on a loaded machine.
    private var lostWakeupCount = 0

    // Curl thread only.
    private var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]
    private var idleHandles: [CurlEasyHandle] = []

    init(settings: CurlSettings) throws(TritonClientError) {
        guard curlGlobalInit else {
            throw TritonClientError(code: .transport, message: "curl_global_init failed")
        }
        guard let multi = curl_multi_init() else {
            throw TritonClientError(code: .transport, message: "curl_multi_init failed")
        }
        self.multi = multi
        self.settings = settings
        self.forbidReuse = settings.forbidReuse
        if settings.maxConnectionsPerHost > 0 {
            _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, settings.maxConnectionsPerHost)
            _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, max(settings.maxConnectionsPerHost, 4))
        }
        // HTTP/2: multiplex streams over one connection (CURLPIPE_MULTIPLEX), unless the
        // libcurl in use cannot reuse the connection at all.
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_PIPELINING, settings.forbidReuse ? 0 : 2)
        let thread = Thread { [self] in self.run() }
        thread.name = "triton-client-curl"
        thread.start()
    }

    /// Hands a transfer to the curl thread.
    func submit(_ transfer: CurlTransfer) {
        lock.lock()
        if shuttingDown {
            lock.unlock()
            transfer.finish(.failure(TritonClientError(code: .cancelled, message: "the client was shut down")))
            return
        }
        pending.append(transfer)
        unlockAndWakeIfSleeping()
    }

    /// Asks the curl thread to abort a transfer (a no-op if it already finished).
    func cancel(_ transfer: CurlTransfer) {
        lock.lock()
        transfer.cancelRequested = true
        cancellations.append(transfer)
        unlockAndWakeIfSleeping()
    }

    /// Ends a critical section that queued work: the thread is woken only if it sleeps in
    /// `curl_multi_poll`; otherwise it sees the work before it next goes to sleep.
    private func unlockAndWakeIfSleeping() {
        let wake = sleeping
        sleeping = false
        lock.unlock()
        if wake { curl_multi_wakeup(multi) }
    }

    /// Stops the thread; transfers still in flight fail as cancelled. Safe to call more than once.
    func shutdown() {
        lock.lock()
        let first = !shuttingDown
        shuttingDown = true
        lock.unlock()
        if first { curl_multi_wakeup(multi) }
    }

    // MARK: TaskExecutor

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        lock.lock()
        if shuttingDown {
            lock.unlock()
            // The thread is stopping or gone (the client was shut down): run the job on the
            // global pool. Jobs queued before the flag was set run in the thread's last turn.
            globalConcurrentExecutor.enqueue(unowned)
            return
        }
        jobs.append(unowned)
        unlockAndWakeIfSleeping()
    }

    /// See ``lostWakeupCount``.
    var lostWakeups: Int {
        lock.lock()
        defer { lock.unlock() }
        return lostWakeupCount
    }

    /// Whether the caller runs on the curl thread.
    var isCurrentThread: Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let thread else { return false }
        return pthread_equal(thread, pthread_self()) != 0
    }

    private func run() {
        lock.lock()
        thread = pthread_self()
        lock.unlock()
        var running: Int32 = 0
        var ready: [UnownedJob] = []
        while true {
            lock.lock()
            // Still marked asleep after a poll, yet work is queued: whoever queued it saw no
            // need to wake the thread (see ``lostWakeupCount``).
            if sleeping, !(pending.isEmpty && cancellations.isEmpty && jobs.isEmpty) { lostWakeupCount += 1 }
            let starting = pending
            pending.removeAll(keepingCapacity: true)
            let aborting = cancellations
            cancellations.removeAll(keepingCapacity: true)
            swap(&ready, &jobs)
            let stop = shuttingDown
            sleeping = false  // a poll that timed out or saw a socket was not woken by anyone
            lock.unlock()

            // Jobs of tasks that prefer this executor; they may submit transfers, which
            // the next turn starts without any wakeup.
            for job in ready { job.runSynchronously(on: asUnownedTaskExecutor()) }
            ready.removeAll(keepingCapacity: true)

            if stop {
                let error = TritonClientError(code: .cancelled, message: "the client was shut down")
                for transfer in starting { transfer.finish(.failure(error)) }
                for (_, transfer) in active {
                    if let easy = transfer.easy { curl_multi_remove_handle(multi, easy.raw) }
                    transfer.finish(.failure(error))
                }
                active.removeAll()
                break
            }
            for transfer in starting { start(transfer) }
            for transfer in aborting { abort(transfer) }

            curl_multi_perform(multi, &running)
            collectFinished()

            // Sleep only when nothing is queued; callers wake the thread only while it sleeps.
            lock.lock()
            let idle = pending.isEmpty && cancellations.isEmpty && jobs.isEmpty && !shuttingDown
            sleeping = idle
            lock.unlock()
            if idle { curl_multi_poll(multi, nil, 0, 1000, nil) }
        }
        // Nothing can be queued any more: the last turn took everything queued before
        // `shuttingDown` was set, and since then submit refuses and enqueue goes elsewhere.
        idleHandles.removeAll()
        // The multi handle itself is freed in deinit: callers may still hold the loop
        // (a client, a task preferring its executor) and call curl_multi_wakeup on it.
    }

    deinit { curl_multi_cleanup(multi) }

    private func start(_ transfer: CurlTransfer) {
        lock.lock()
        let cancelled = transfer.cancelRequested
        lock.unlock()
        if cancelled {
            transfer.finish(.failure(TritonClientError(code: .cancelled, message: "the call was cancelled")))
            return
        }
        guard let easy = idleHandles.popLast() ?? CurlEasyHandle() else {
            transfer.finish(.failure(TritonClientError(code: .transport, message: "curl_easy_init failed")))
            return
        }
        transfer.easy = easy
        transfer.maxResponseBytes = settings.maxResponseBytes
        if let error = configure(easy.raw, for: transfer) {
            recycle(easy)
            transfer.easy = nil
            transfer.finish(.failure(error))
            return
        }
        let code = curl_multi_add_handle(multi, easy.raw)
        guard code == CURLM_OK else {
            recycle(easy)
            transfer.easy = nil
            transfer.finish(.failure(TritonClientError(
                code: .transport, message: "curl_multi_add_handle failed: \(String(cString: curl_multi_strerror(code)))")))
            return
        }
        active[easy.raw] = transfer
    }

    private func abort(_ transfer: CurlTransfer) {
        guard let easy = transfer.easy, active.removeValue(forKey: easy.raw) != nil else { return }
        curl_multi_remove_handle(multi, easy.raw)
        transfer.easy = nil
        recycle(easy)
        transfer.finish(.failure(TritonClientError(code: .cancelled, message: "the call was cancelled")))
    }

    private func recycle(_ easy: CurlEasyHandle) {
        curl_easy_reset(easy.raw)
        if idleHandles.count < 256 { idleHandles.append(easy) }
    }

    private func collectFinished() {
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(multi, &remaining) {
            guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle else { continue }
            let result = message.pointee.data.result
            guard let transfer = active.removeValue(forKey: handle) else {
                curl_multi_remove_handle(multi, handle)
                continue
            }
            let outcome = outcome(of: transfer, handle: handle, result: result)
            curl_multi_remove_handle(multi, handle)
            if let easy = transfer.easy { recycle(easy) }
            transfer.easy = nil
            transfer.headerList = nil
            transfer.finish(outcome)
        }
    }

    private func outcome(of transfer: CurlTransfer, handle: UnsafeMutableRawPointer, result: CURLcode)
        -> Result<TransportResponse, any Error>
    {
        if result == CURLE_OK {
            var status = 0
            _ = ccurl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
            let response = TransportResponse(status: status, headers: transfer.responseHeaders, body: transfer.responseBody)
            transfer.responseBody = []
            transfer.responseHeaders = []
            return .success(response)
        }
        if transfer.responseTooLarge {
            return .failure(TritonClientError(
                code: .malformedResponse,
                message: "the response is larger than the \(settings.maxResponseBytes)-byte limit"))
        }
        let detail = String(cString: transfer.errorBuffer)
        let text = detail.isEmpty ? String(cString: curl_easy_strerror(result)) : detail
        let curlCode = Int(result.rawValue)
        switch result {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT:
            return .failure(TritonClientError(code: .connectionFailed, message: text, curlCode: curlCode))
        case CURLE_OPERATION_TIMEDOUT:
            // Nothing sent yet means the connection itself never came up: safe to retry.
            var sent = 0
            _ = ccurl_easy_getinfo_long(handle, CURLINFO_REQUEST_SIZE, &sent)
            let code: TritonClientError.Code = sent == 0 ? .connectionFailed : .timeout
            return .failure(TritonClientError(code: code, message: text, curlCode: curlCode))
        default:
            return .failure(TritonClientError(code: .transport, message: text, curlCode: curlCode))
        }
    }

    /// Applies the request to a fresh (or reset) easy handle. Returns an error instead of throwing
    /// so the caller can recycle the handle.
    private func configure(_ h: UnsafeMutableRawPointer, for transfer: CurlTransfer) -> TritonClientError? {
        let request = transfer.request
        var failed: CURLcode = CURLE_OK
        func check(_ code: CURLcode) { if code != CURLE_OK, failed == CURLE_OK { failed = code } }

        check(ccurl_easy_setopt_cstr(h, CURLOPT_URL, request.url))
        check(ccurl_easy_setopt_long(h, CURLOPT_NOSIGNAL, 1))
        check(ccurl_easy_setopt_long(h, CURLOPT_TCP_NODELAY, 1))
        // Talk to Triton directly: an http_proxy/ALL_PROXY set for other tools must
        // not route tensors (or images) through a proxy.
        check(ccurl_easy_setopt_cstr(h, CURLOPT_PROXY, ""))
        check(ccurl_easy_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, settings.connectTimeoutMS))
        if let timeout = request.timeout ?? settings.defaultTimeout {
            check(ccurl_easy_setopt_long(h, CURLOPT_TIMEOUT_MS, timeout.roundedUpMilliseconds))
        }
        check(ccurl_easy_setopt_long(h, CURLOPT_HTTP_VERSION, settings.httpVersion))
        if settings.http2, !forbidReuse { check(ccurl_easy_setopt_long(h, CURLOPT_PIPEWAIT, 1)) }
        if forbidReuse { check(ccurl_easy_setopt_long(h, CURLOPT_FORBID_REUSE, 1)) }
        if let encoding = request.acceptEncoding { check(ccurl_easy_setopt_cstr(h, CURLOPT_ACCEPT_ENCODING, encoding)) }
        if let ca = settings.caFile { check(ccurl_easy_setopt_cstr(h, CURLOPT_CAINFO, ca)) }
        if let cert = settings.certificateFile { check(ccurl_easy_setopt_cstr(h, CURLOPT_SSLCERT, cert)) }
        if let key = settings.privateKeyFile { check(ccurl_easy_setopt_cstr(h, CURLOPT_SSLKEY, key)) }
        check(ccurl_easy_setopt_long(h, CURLOPT_SSL_VERIFYPEER, settings.verifyPeer ? 1 : 0))
        check(ccurl_easy_setopt_long(h, CURLOPT_SSL_VERIFYHOST, settings.verifyHost ? 2 : 0))
        if settings.verbose { check(ccurl_easy_setopt_long(h, CURLOPT_VERBOSE, 1)) }
        check(ccurl_easy_setopt_ptr(h, CURLOPT_ERRORBUFFER, transfer.errorBuffer))

        let headers = CurlHeaderList()
        var ok = headers.append("Expect:")
        if request.suppressDefaultHeaders {
            let given = Set(request.headers.map { $0.0.lowercased() })
            if !given.contains("accept") { ok = ok && headers.append("Accept:") }
            if !given.contains("content-type") { ok = ok && headers.append("Content-Type:") }
        }
        for (name, value) in request.headers {
            // A header with an empty value is sent as "Name;" (libcurl's spelling for "send it empty").
            ok = ok && headers.append(value.isEmpty ? "\(name);" : "\(name): \(value)")
        }
        guard ok else { return .invalidArgument("could not build the request headers") }
        transfer.headerList = headers
        check(ccurl_easy_setopt_slist(h, CURLOPT_HTTPHEADER, headers.raw))

        let method = request.method.uppercased()
        switch method {
        case "GET" where request.body.isEmpty:
            check(ccurl_easy_setopt_long(h, CURLOPT_HTTPGET, 1))
        case "HEAD":
            check(ccurl_easy_setopt_long(h, CURLOPT_NOBODY, 1))
        default:
            // The body lives in memory owned by the transfer until the handle is recycled.
            let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(request.body.count, 1), alignment: 16)
            request.body.withUnsafeBytes { source in
                if let base = source.baseAddress, source.count > 0 {
                    storage.baseAddress?.copyMemory(from: base, byteCount: source.count)
                }
            }
            transfer.bodyStorage = storage
            check(ccurl_easy_setopt_long(h, CURLOPT_POST, 1))
            check(ccurl_easy_setopt_off(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)))
            check(ccurl_easy_setopt_ptr(h, CURLOPT_POSTFIELDS, storage.baseAddress))
            if method != "POST" { check(ccurl_easy_setopt_cstr(h, CURLOPT_CUSTOMREQUEST, method)) }
        }

        let context = Unmanaged.passUnretained(transfer).toOpaque()
        check(ccurl_easy_setopt_write_cb(h, curlWriteCallback))
        check(ccurl_easy_setopt_ptr(h, CURLOPT_WRITEDATA, context))
        check(ccurl_easy_setopt_header_cb(h, curlHeaderCallback))
        check(ccurl_easy_setopt_ptr(h, CURLOPT_HEADERDATA, context))

        if failed != CURLE_OK {
            return TritonClientError(
                code: .invalidArgument,
                message: "libcurl refused an option: \(String(cString: curl_easy_strerror(failed)))",
                curlCode: Int(failed.rawValue))
        }
        return nil
    }
}

private func curlWriteCallback(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
) -> Int {
    let length = size * count
    guard let context else { return 0 }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
    if transfer.responseBody.count + length > transfer.maxResponseBytes {
        transfer.responseTooLarge = true
        return 0  // makes libcurl abort the transfer
    }
    if let data, length > 0 {
        transfer.responseBody.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
    }
    return length
}

private func curlHeaderCallback(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
) -> Int {
    let length = size * count
    guard let context, let data else { return length }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
    let bytes = UnsafeRawBufferPointer(start: data, count: length)
    var end = bytes.count
    while end > 0, bytes[end - 1] == 0x0A || bytes[end - 1] == 0x0D { end -= 1 }
    guard end > 0 else { return length }
    let line = bytes[0..<end]
    if line.starts(with: "HTTP/".utf8) {
        // A new status line (after a 1xx or a redirect) starts a new header block.
        transfer.responseHeaders.removeAll()
        return length
    }
    guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return length }
    var valueStart = colon + 1
    while valueStart < line.endIndex, line[valueStart] == 0x20 || line[valueStart] == 0x09 { valueStart += 1 }
    var valueEnd = line.endIndex
    while valueEnd > valueStart, line[valueEnd - 1] == 0x20 || line[valueEnd - 1] == 0x09 { valueEnd -= 1 }
    let nameBytes = line[line.startIndex..<colon]
    let name = String(decoding: nameBytes, as: UTF8.self)
    let value = String(decoding: line[valueStart..<valueEnd], as: UTF8.self)
    transfer.responseHeaders.append((name, value))
    if asciiCaseInsensitiveEquals(nameBytes, "content-length"), let expected = Int(value), expected > 0,
        expected <= transfer.maxResponseBytes
    {
        // Trust the announced size only up to a few MiB: a bogus Content-Length
        // must not make every in-flight call allocate a gigabyte up front.
        transfer.responseBody.reserveCapacity(min(expected, 4 << 20))
    }
    return length
}

/// Compares header names without Foundation (they are ASCII by definition).
func asciiCaseInsensitiveEquals(_ bytes: some Collection<UInt8>, _ name: String) -> Bool {
    guard bytes.count == name.utf8.count else { return false }
    for (a, b) in zip(bytes, name.utf8) {
        let la = (a >= 0x41 && a <= 0x5A) ? a | 0x20 : a
        let lb = (b >= 0x41 && b <= 0x5A) ? b | 0x20 : b
        if la != lb { return false }
    }
    return true
}
