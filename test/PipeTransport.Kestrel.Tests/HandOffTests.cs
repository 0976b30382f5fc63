using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// <see cref="PipeTransportOptions.HandOff"/> in one process: two servers with the same configuration,
/// the second taking over the first's endpoints; and the options' validation.
/// </summary>
public sealed class HandOffTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("ptk-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string HandOffPath => Path.Combine(_dir, "handoff.sock");

    private Action<PipeTransportOptions> WithHandOff => o => o.HandOff = new HandOffOptions(HandOffPath);

    [Test]
    public void Options_RejectBadPaths()
    {
        Assert.Throws<ArgumentNullException>(() => _ = new HandOffOptions(null!));
        Assert.Throws<ArgumentException>(() => _ = new HandOffOptions(""));
        Assert.That(Assert.Throws<ArgumentException>(() => _ = new HandOffOptions("/run/a\0b"))!.Message, Does.Contain("NUL"));
        string tooLong = "/tmp/" + new string('x', 120);
        Assert.That(Assert.Throws<ArgumentException>(() => _ = new HandOffOptions(tooLong))!.Message, Does.Contain(tooLong).And.Contain("107"));
        string deepDirectory = "/tmp/" + new string('d', 90) + "/h.sock";   // fits, but its temporary sibling would not
        Assert.That(Assert.Throws<ArgumentException>(() => _ = new HandOffOptions(deepDirectory))!.Message, Does.Contain("temporary name"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new HandOffOptions("/tmp/h.sock").Timeout = TimeSpan.Zero);
        Assert.That(new HandOffOptions("h.sock").Path, Is.EqualTo(Path.Combine(Environment.CurrentDirectory, "h.sock")));
    }

    [Test, CancelAfter(30_000)]
    public void Start_WithMissingDirectory_FailsNamingThePath(CancellationToken ct)
    {
        string missing = Path.Combine(_dir, "no-such-dir", "handoff.sock");
        var e = Assert.CatchAsync(async () => await (await TestServer.StartAsync(k => k.Listen(IPAddress.Loopback, 0), ct,
            o => o.HandOff = new HandOffOptions(missing))).DisposeAsync());
        Assert.That(e, Is.InstanceOf<DirectoryNotFoundException>().Or.InnerException.InstanceOf<DirectoryNotFoundException>());
        Assert.That(e!.ToString(), Does.Contain(missing));
    }

    [Test, CancelAfter(60_000)]
    public async Task Successor_AdoptsTcpAndUnixListeners_PredecessorIsStopped(CancellationToken ct)
    {
        string unix = Path.Combine(_dir, "http.sock");
        void Listen(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions k)
        {
            k.Listen(IPAddress.Loopback, 0);
            k.ListenUnixSocket(unix);
        }
        var old = await TestServer.StartAsync(Listen, ct, WithHandOff, transportLogLevel: LogLevel.Information);
        try
        {
            await old.Logs.WaitForEventAsync("HandOffServing", ct);
            int port = old.Port;
            using (var client = old.CreateTcpClient())
            {
                Assert.That(await client.GetStringAsync("/", ct), Is.EqualTo("hello"));
            }
            var stopping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            old.App.Lifetime.ApplicationStopping.Register(stopping.SetResult);

            await using var successor = await TestServer.StartAsync(Listen, ct, WithHandOff, transportLogLevel: LogLevel.Information);
            var taken = await successor.Logs.WaitForEventAsync("HandOffTaken", ct);
            await stopping.Task.WaitAsync(ct);
            var served = await old.Logs.WaitForEventAsync("HandOffServed", ct);
            await old.DisposeAsync();

            Assert.That(successor.Port, Is.EqualTo(port), "port 0 was asked for: the same socket was adopted, not a new one bound");
            Assert.That(taken.Message, Does.Contain($"tcp:127.0.0.1:0").And.Contain($"unix:{unix}"));
            Assert.That(served.Message, Does.Contain(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.That(File.Exists(unix), Is.True, "the predecessor left the socket file to its successor");
            using var tcp = successor.CreateTcpClient();
            using var overUnix = TestServer.CreateUnixClient(unix);
            Assert.That(await tcp.GetStringAsync("/", ct), Is.EqualTo("hello"));
            Assert.That(await overUnix.GetStringAsync("/", ct), Is.EqualTo("hello"));
            await successor.Logs.WaitForEventAsync("HandOffServing", ct);
            Assert.That(successor.Logs.AtLeast(LogLevel.Warning), Is.Empty);
            Assert.That(old.Logs.AtLeast(LogLevel.Warning), Is.Empty);
        }
        finally
        {
            await old.DisposeAsync();
        }
    }

    [Test, CancelAfter(60_000)]
    public async Task Successor_TakesOverFifoEndPoint_AfterThePredecessorExited(CancellationToken ct)
    {
        string requests = Path.Combine(_dir, "requests.fifo"), responses = Path.Combine(_dir, "responses.fifo");
        void Listen(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions k) => k.Listen(new FifoEndPoint(requests, responses));
        var old = await TestServer.StartAsync(Listen, ct, WithHandOff, transportLogLevel: LogLevel.Information);
        try
        {
            await old.Logs.WaitForEventAsync("HandOffServing", ct);
            Assert.That(RawResponse.Parse(await ExchangeAsync(requests, responses, ct)).Status, Is.EqualTo(200));

            await using var successor = await TestServer.StartAsync(Listen, ct, WithHandOff, transportLogLevel: LogLevel.Information);
            await old.Logs.WaitForEventAsync("HandOffServed", ct);
            await successor.Logs.WaitForEventAsync("HandOffServing", ct);
            await old.DisposeAsync();

            Assert.That(Fifo.Exists(requests) && Fifo.Exists(responses), Is.True, "the FIFOs stay for the successor");
            var after = RawResponse.Parse(await ExchangeAsync(requests, responses, ct));
            Assert.That((after.Status, after.Body), Is.EqualTo((200, "hello")));
            Assert.That(successor.Logs.AtLeast(LogLevel.Warning), Is.Empty);
        }
        finally
        {
            await old.DisposeAsync();
        }
    }

    [Test, CancelAfter(60_000)]
    public async Task SuccessorThatFailsToStart_LeavesThePredecessorServing(CancellationToken ct)
    {
        string unix = Path.Combine(_dir, "http.sock");
        await using var old = await TestServer.StartAsync(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.ListenUnixSocket(unix);
        }, ct, WithHandOff, transportLogLevel: LogLevel.Information);
        await old.Logs.WaitForEventAsync("HandOffServing", ct);
        var stopping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        old.App.Lifetime.ApplicationStopping.Register(stopping.SetResult);
        using var occupied = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        occupied.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        occupied.Listen();

        // It adopts both listeners, then fails on a third endpoint: the start fails before any commit.
        Assert.CatchAsync(async () => await (await TestServer.StartAsync(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.ListenUnixSocket(unix);
            k.Listen((IPEndPoint)occupied.LocalEndPoint!);
        }, ct, WithHandOff)).DisposeAsync());

        using var tcp = old.CreateTcpClient();
        using var overUnix = TestServer.CreateUnixClient(unix);
        Assert.That(await tcp.GetStringAsync("/", ct), Is.EqualTo("hello"));
        Assert.That(await overUnix.GetStringAsync("/", ct), Is.EqualTo("hello"));
        Assert.That(stopping.Task.IsCompleted, Is.False, "the predecessor was not told to stop");

        // A later successor still takes over.
        await using var successor = await TestServer.StartAsync(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.ListenUnixSocket(unix);
        }, ct, WithHandOff, transportLogLevel: LogLevel.Information);
        await stopping.Task.WaitAsync(ct);
        Assert.That(successor.Port, Is.EqualTo(old.Port));
    }

    [Test, CancelAfter(60_000)]
    public async Task PredecessorThatVanishesMidWay_SuccessorBindsAnew(CancellationToken ct)
    {
        // Something at the hand-off path that accepts and hangs up at once, like a predecessor that dies mid hand-off.
        using var vanishing = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        vanishing.Bind(new UnixDomainSocketEndPoint(HandOffPath));
        vanishing.Listen(8);
        Task hangingUp = Task.Run(async () => (await vanishing.AcceptAsync(ct)).Dispose(), ct);

        await using var server = await TestServer.StartAsync(k => k.Listen(IPAddress.Loopback, 0), ct, WithHandOff, transportLogLevel: LogLevel.Information);
        await hangingUp;
        var failed = await server.Logs.WaitForEventAsync("HandOffFailed", ct);
        await server.Logs.WaitForEventAsync("HandOffServing", ct);

        using var client = server.CreateTcpClient();
        Assert.That(await client.GetStringAsync("/", ct), Is.EqualTo("hello"));
        Assert.That(failed.Message, Does.Contain(HandOffPath));
    }

    [Test, CancelAfter(60_000)]
    public async Task StaleHandOffSocket_IsAFirstStart(CancellationToken ct)
    {
        using (var stale = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified))
        {
            stale.Bind(new UnixDomainSocketEndPoint(HandOffPath));
        }

        await using var server = await TestServer.StartAsync(k => k.Listen(IPAddress.Loopback, 0), ct, WithHandOff, transportLogLevel: LogLevel.Information);
        await server.Logs.WaitForEventAsync("HandOffServing", ct);

        using var client = server.CreateTcpClient();
        Assert.That(await client.GetStringAsync("/", ct), Is.EqualTo("hello"));
        Assert.That(server.Logs.AtLeast(LogLevel.Warning), Is.Empty);
    }

    /// <summary>One HTTP/1.1 conversation over the FIFO pair (blocking opens, as a shell client does).</summary>
    private static async Task<string> ExchangeAsync(string requests, string responses, CancellationToken ct)
    {
        var openResponses = Task.Run(() => new FileStream(responses, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1), ct);
        var openRequests = Task.Run(() => new FileStream(requests, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1), ct);
        await using var response = await openResponses.WaitAsync(ct);
        await using (var request = await openRequests.WaitAsync(ct))
        {
            await request.WriteAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: fifo\r\nConnection: close\r\n\r\n"), ct);
        }
        using var reader = new StreamReader(response, Encoding.ASCII);
        return await reader.ReadToEndAsync(ct);
    }
}
