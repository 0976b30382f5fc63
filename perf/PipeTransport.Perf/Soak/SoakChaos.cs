using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Soak;

/// <summary>
/// The chaos mix, all the soak long: workers that abort connections at every stage (mid-headers,
/// mid-body, mid-response, with RST or FIN, garbage, a half-close that must still get its answer), and
/// <c>soak-client</c> processes, each mid-download and mid-upload on several connections, killed with
/// SIGKILL at a random moment. The aborts are the point; what fails the soak is a wrong answer, or a
/// connection the server did not take outside an fd-limit period.
/// </summary>
internal sealed class SoakChaos
{
    private const int Workers = 3;
    private static readonly TimeSpan s_actionTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan s_killEvery = TimeSpan.FromMilliseconds(1500);

    /// <summary>A client process has this long to start and get its four connections moving (a busy machine starts a runtime slowly).</summary>
    private static readonly TimeSpan s_clientStartTimeout = TimeSpan.FromSeconds(20);

    private static readonly (string Name, Func<int, CancellationToken, Task> Run)[] s_actions =
    [
        ("RST mid-headers", AbortMidHeadersAsync),
        ("RST mid-body", AbortMidBodyAsync),
        ("RST mid-response", AbortMidResponseAsync),
        ("close with the response unread", CloseUnreadAsync),
        ("half-close, then read the answer", (port, ct) => SoakHttp.PlaintextAsync(port, halfClose: true, ct)),
        ("garbage, expect 400", GarbageAsync),
        ("connect and leave", ConnectAndLeaveAsync),
    ];

    private readonly int _port;
    private readonly SoakLedger _ledger;
    private readonly ConcurrentDictionary<string, long> _done = new();

    public SoakChaos(int port, SoakLedger ledger)
    {
        _port = port;
        _ledger = ledger;
    }

    /// <summary>Chaos actions completed, by name (killed client processes included).</summary>
    public IReadOnlyDictionary<string, long> Done => _done;

    public Task RunAsync(CancellationToken stop) =>
        Task.WhenAll(Enumerable.Range(0, Workers).Select(i => WorkerAsync(i, stop)).Append(KillClientsAsync(stop)));

    private async Task WorkerAsync(int seed, CancellationToken stop)
    {
        var random = new Random(seed);
        while (!stop.IsCancellationRequested)
        {
            var (name, run) = s_actions[random.Next(s_actions.Length)];
            double started = _ledger.Now;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
            timeout.CancelAfter(s_actionTimeout);
            try
            {
                await run(_port, timeout.Token);
                _done.AddOrUpdate(name, 1, (_, n) => n + 1);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (SoakCheckException e)
            {
                _ledger.Unexpected("chaos: " + name, "wrong answer", e.Message);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or IOException)
            {
                // At the fd limit a new connection waits in the backlog, or is refused or reset.
                string kind = e is OperationCanceledException ? "timed out" : (e as SocketException)?.SocketErrorCode.ToString() ?? e.GetType().Name;
                _ledger.FdLimitOnly("chaos: " + name, kind, started, SoakServer.OneLine(e.Message));
            }

            await Task.Delay(random.Next(5, 20), CancellationToken.None);
        }
    }

    private async Task KillClientsAsync(CancellationToken stop)
    {
        var random = new Random(42);
        while (!stop.IsCancellationRequested)
        {
            double started = _ledger.Now;
            await using (var client = ChildProcess.StartSelf(false, "soak-client", _port.ToString(System.Globalization.CultureInfo.InvariantCulture)))
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
                timeout.CancelAfter(s_clientStartTimeout);
                try
                {
                    await client.ExpectAsync("started", timeout.Token);
                    await Task.Delay(random.Next(100, 600), stop);
                    _done.AddOrUpdate("client process killed mid-transfer", 1, (_, n) => n + 1);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e) when (e is OperationCanceledException or InvalidOperationException)
                {
                    _ledger.FdLimitOnly("chaos: client process", "did not get going", started, SoakServer.OneLine(e.Message));
                }
            } // SIGKILL

            try
            {
                await Task.Delay(s_killEvery, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static async Task AbortMidHeadersAsync(int port, CancellationToken ct)
    {
        var socket = await SoakHttp.ConnectAsync(port, ct);
        await socket.SendAsync("GET /plaintext HTTP/1.1\r\nHost: soak\r\nX-Partial: abc"u8.ToArray(), ct);
        SoakHttp.Reset(socket);
    }

    private static async Task AbortMidBodyAsync(int port, CancellationToken ct)
    {
        var socket = await SoakHttp.ConnectAsync(port, ct);
        await socket.SendAsync("POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 65536\r\n\r\n"u8.ToArray(), ct);
        await socket.SendAsync(new byte[16 * 1024], ct);
        SoakHttp.Reset(socket);
    }

    private static async Task AbortMidResponseAsync(int port, CancellationToken ct)
    {
        var socket = await SoakHttp.ConnectAsync(port, ct);
        try
        {
            await socket.SendAsync("GET /big?n=16777216 HTTP/1.1\r\nHost: soak\r\n\r\n"u8.ToArray(), ct);
            var buffer = new byte[64 * 1024];
            for (long received = 0; received < 256 * 1024;)
            {
                int n = await socket.ReceiveAsync(buffer, ct);
                if (n == 0)
                {
                    throw new SoakCheckException($"the server closed GET /big after {received} bytes");
                }

                received += n;
            }
        }
        finally
        {
            SoakHttp.Reset(socket);
        }
    }

    private static async Task CloseUnreadAsync(int port, CancellationToken ct)
    {
        using var socket = await SoakHttp.ConnectAsync(port, ct);
        await socket.SendAsync("GET /64k HTTP/1.1\r\nHost: soak\r\n\r\n"u8.ToArray(), ct);
    }

    private static async Task GarbageAsync(int port, CancellationToken ct)
    {
        var (status, _) = await SoakHttp.ExchangeAsync(port, "\u0001\u0002 NOT HTTP AT ALL\r\n\r\n", halfClose: false, ct);
        if (status != 400)
        {
            throw new SoakCheckException($"garbage answered {status}, not 400");
        }
    }

    private static async Task ConnectAndLeaveAsync(int port, CancellationToken ct)
    {
        using var socket = await SoakHttp.ConnectAsync(port, ct);
        await Task.Delay(50, ct);
    }
}
