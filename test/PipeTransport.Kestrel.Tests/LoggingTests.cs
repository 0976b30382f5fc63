using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// The transport logs what Kestrel's Sockets transport logs, with the same event ids, names and levels:
/// a client's reset, a client's FIN, the server's FIN, pause and resume under backpressure; and its own
/// accept failures and fd-limit events.
/// </summary>
public sealed class LoggingTests
{
    private static Task<TestServer> StartAsync(CancellationToken ct) =>
        TestServer.StartAsync(k => k.Listen(IPAddress.Loopback, 0), ct, transportLogLevel: LogLevel.Debug);

    private static Task<RawClient> ConnectAsync(TestServer server, CancellationToken ct) =>
        RawClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, server.Port), ct);

    [Test, CancelAfter(20_000)]
    public async Task A_client_reset_is_logged_as_ConnectionReset(CancellationToken ct)
    {
        await using var server = await StartAsync(ct);
        using var client = await ConnectAsync(server, ct);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n", ct);
        Assert.That(RawResponse.Parse(await client.ReadUntilAsync("\r\n0\r\n\r\n", ct)).Body, Is.EqualTo("hello")); // the server reads again, for the next request

        client.Reset();

        var reset = await WaitForEventAsync(server, 19, ct);
        Assert.That(reset.Id.Name, Is.EqualTo("ConnectionReset"));
        Assert.That(reset.Level, Is.EqualTo(LogLevel.Debug));
        Assert.That(reset.Message, Does.Match(@"^Connection id "".+"" reset\.$"));
    }

    [Test, CancelAfter(20_000)]
    public async Task A_client_half_close_is_logged_as_ConnectionReadFin(CancellationToken ct)
    {
        await using var server = await StartAsync(ct);
        using var client = await ConnectAsync(server, ct);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n", ct);

        client.Socket.Shutdown(SocketShutdown.Send);

        var fin = await WaitForEventAsync(server, 6, ct);
        Assert.That(fin.Id.Name, Is.EqualTo("ConnectionReadFin"));
        Assert.That(fin.Level, Is.EqualTo(LogLevel.Debug));
        Assert.That(fin.Message, Does.Match(@"^Connection id "".+"" received FIN\.$"));
        Assert.That(RawResponse.Parse(await client.ReadToEndAsync(ct)).Body, Is.EqualTo("hello"), "half-close still gets its answer");
    }

    [Test, CancelAfter(20_000)]
    public async Task The_server_closing_is_logged_as_ConnectionWriteFin(CancellationToken ct)
    {
        await using var server = await StartAsync(ct);
        using var client = await ConnectAsync(server, ct);

        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", ct);
        Assert.That(RawResponse.Parse(await client.ReadToEndAsync(ct)).Body, Is.EqualTo("hello"));

        var fin = await WaitForEventAsync(server, 7, ct);
        Assert.That(fin.Id.Name, Is.EqualTo("ConnectionWriteFin"));
        Assert.That(fin.Level, Is.EqualTo(LogLevel.Debug));
        Assert.That(fin.Message, Does.Match(@"^Connection id "".+"" sending FIN because: "".+""$"));
    }

    /// <summary>A request body the handler does not read fills Input: the receive loop pauses, and resumes once Kestrel takes the body.</summary>
    [Test, CancelAfter(30_000)]
    public async Task Backpressure_is_logged_as_ConnectionPause_then_ConnectionResume(CancellationToken ct)
    {
        const int BodyLength = 32 * 1024 * 1024;
        await using var server = await StartAsync(ct);
        using var client = await ConnectAsync(server, ct);
        await client.SendAsync($"GET /wait HTTP/1.1\r\nHost: x\r\nContent-Length: {BodyLength}\r\n\r\n", ct);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Task body = Task.Run(async () =>
        {
            var chunk = new byte[64 * 1024];
            for (var sent = 0; sent < BodyLength; sent += chunk.Length)
            {
                await client.SendAsync(chunk, stop.Token);
            }
        }, ct);
        await server.Entered.Task.WaitAsync(ct);

        var pause = await WaitForEventAsync(server, 4, ct);
        Assert.That(pause.Id.Name, Is.EqualTo("ConnectionPause"));
        Assert.That(pause.Level, Is.EqualTo(LogLevel.Debug));
        Assert.That(pause.Message, Does.Match(@"^Connection id "".+"" paused\.$"));

        server.Release.TrySetResult(); // the handler answers; Kestrel then takes (or drops) the rest of the body
        var resume = await WaitForEventAsync(server, 5, ct);
        Assert.That(resume.Id.Name, Is.EqualTo("ConnectionResume"));
        Assert.That(resume.Message, Does.Match(@"^Connection id "".+"" resumed\.$"));
        Assert.That(resume.Message[..resume.Message.LastIndexOf('"')], Is.EqualTo(pause.Message[..pause.Message.LastIndexOf('"')]), "the same connection");

        await stop.CancelAsync();
        client.Socket.Close();
        try
        {
            await body;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Running out of fds is a warning an operator must see; a client that gave up in the backlog is Debug.</summary>
    [TestCase(Errno.EMFILE, LogLevel.Warning), TestCase(Errno.ENFILE, LogLevel.Warning), TestCase(Errno.ECONNABORTED, LogLevel.Debug)]
    public void Accept_failures_are_logged_with_their_errno(Errno errno, LogLevel level)
    {
        using var provider = new CapturingLoggerProvider(LogLevel.Debug);
        var logger = provider.CreateLogger(PipeTransportLog.Category);

        PipeTransportLog.ListenerEvent(logger, new FdListenerEvent(FdListenerEventKind.AcceptError, "127.0.0.1:8080", errno, TimeSpan.Zero));

        Assert.That(provider.TransportEvents, Has.Count.EqualTo(1));
        var logged = provider.TransportEvents.Single();
        Assert.That(logged.Id.Id, Is.EqualTo(20));
        Assert.That(logged.Id.Name, Is.EqualTo("AcceptFailed"));
        Assert.That(logged.Level, Is.EqualTo(level));
        Assert.That(logged.Message, Does.Contain("127.0.0.1:8080").And.Contain(errno.ToString()));
    }

    [Test]
    public void The_fd_limit_back_off_is_logged_when_entered_and_when_left()
    {
        using var provider = new CapturingLoggerProvider(LogLevel.Debug);
        var logger = provider.CreateLogger(PipeTransportLog.Category);

        PipeTransportLog.ListenerEvent(logger, new FdListenerEvent(FdListenerEventKind.FdLimitEntered, "127.0.0.1:8080", Errno.EMFILE, TimeSpan.Zero));
        PipeTransportLog.ListenerEvent(logger, new FdListenerEvent(FdListenerEventKind.FdLimitLeft, "127.0.0.1:8080", 0, TimeSpan.FromSeconds(2)));

        var events = provider.TransportEvents.ToArray();
        Assert.That(events.Select(e => (e.Id.Id, e.Id.Name, e.Level)), Is.EqualTo(new[]
        {
            (21, "FdLimitEntered", LogLevel.Warning),
            (22, "FdLimitLeft", LogLevel.Information),
        }));
        Assert.That(events[0].Message, Does.Contain("EMFILE").And.Contain("127.0.0.1:8080"));
        Assert.That(events[1].Message, Does.Contain("00:00:02").And.Contain("127.0.0.1:8080"));
    }

    private static async Task<CapturingLoggerProvider.LogEvent> WaitForEventAsync(TestServer server, int id, CancellationToken ct)
    {
        while (true)
        {
            if (server.Logs.TransportEvents.FirstOrDefault(e => e.Id.Id == id) is { } found)
            {
                return found;
            }

            if (ct.IsCancellationRequested)
            {
                Assert.Fail($"event {id} was not logged; the transport logged:\n{string.Join("\n", server.Logs.TransportEvents)}");
            }

            await Task.Delay(5, CancellationToken.None);
        }
    }
}
