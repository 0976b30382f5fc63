using System.Net;
using System.Net.Sockets;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// Zero-downtime restarts under load: a child Kestrel app (the test assembly's <c>--child handoff</c>
/// mode) is replaced ten times while 64 HTTP clients send requests without pause, over TCP and a Unix
/// socket. With hand-off every request is answered; the usual stop-then-start of Kestrel's Sockets
/// transport is run the same way for comparison, and only reports what its clients saw.
/// </summary>
public sealed class HandOffRestartTests
{
    private const int Workers = 64;
    private const int Restarts = 10;

    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("ptk-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string UnixPath => Path.Combine(_dir, "http.sock");

    private string HandOffPath => Path.Combine(_dir, "handoff.sock");

    [Test, CancelAfter(300_000)]
    public async Task HandOff_TenRestartsUnderLoad_EveryRequestAnswered(CancellationToken ct)
    {
        int port = FreePort();
        var children = new List<ChildProcess>();
        try
        {
            var (result, last) = await RestartUnderLoadAsync(children, () => StartChild("pipe", port, HandOffPath), "Serving hand-off at",
                async (current, next) =>
                {
                    // The successor serves its own hand-off once it has committed; the old one then drains and exits.
                    await next.WaitLineAsync("Serving hand-off at", ct);
                    int exit = await current.WaitForExitAsync(ct);
                    Assert.That(exit, Is.EqualTo(0), current.Output);
                    Assert.That(current.Output, Does.Contain("Handed off"), "the old instance stopped because it was handed off");
                }, port, ct);
            await TestContext.Out.WriteLineAsync($"hand-off restarts: {result.Requests} requests, {result.Errors} errors ({Restarts} restarts, {Workers} concurrent clients)");
            last.Signal(Signum.SIGTERM);
            Assert.That(await last.WaitForExitAsync(ct), Is.EqualTo(0), last.Output);
            Assert.That(result.FirstErrors, Is.Empty);
            Assert.That((result.Errors, result.Non2xx), Is.EqualTo((0L, 0L)));
            Assert.That(result.Answered, Is.EqualTo(result.Requests), "every request sent was answered");
            Assert.That(result.Pids, Has.Count.GreaterThan(Restarts / 2), "the answers came from the successive instances");
        }
        finally
        {
            foreach (ChildProcess child in children)
            {
                await child.DisposeAsync();
            }
        }
    }

    [Test, CancelAfter(300_000)]
    public async Task SocketsTransport_TenStopStartRestartsUnderLoad_ReportsErrors(CancellationToken ct)
    {
        int port = FreePort();
        var children = new List<ChildProcess>();
        try
        {
            // Stop, then start: the successor is started only once the old one has exited.
            var (result, _) = await RestartUnderLoadAsync(children, () => StartChild("sockets", port, "-"), "ready",
                async (current, next) => await next.WaitLineAsync("ready", ct), port, ct,
                stopFirst: async current =>
                {
                    current.Signal(Signum.SIGTERM);
                    await current.WaitForExitAsync(ct);
                });
            await TestContext.Out.WriteLineAsync($"sockets stop-start: {result.Requests} requests, {result.Errors + result.Non2xx} errors ({Restarts} restarts, {Workers} concurrent clients)");
            foreach (string error in result.FirstErrors)
            {
                await TestContext.Out.WriteLineAsync($"  e.g. {error}");
            }

            // The comparison the hand-off test stands against: the load loop does see a restart the usual way.
            Assert.That(result.Errors + result.Non2xx, Is.GreaterThan(0), "stopping and starting under load refused no request");
        }
        finally
        {
            foreach (ChildProcess child in children)
            {
                await child.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Starts the first server, runs the load loop, and restarts <see cref="Restarts"/> times: <paramref name="stopFirst"/>
    /// (if any), a new server, then <paramref name="switched"/>; some load is answered after each restart. Returns the
    /// load's result and the last server.
    /// </summary>
    private async Task<(LoadResult Result, ChildProcess Last)> RestartUnderLoadAsync(List<ChildProcess> children, Func<ChildProcess> start,
        string readyLine, Func<ChildProcess, ChildProcess, Task> switched, int port, CancellationToken ct, Func<ChildProcess, Task>? stopFirst = null)
    {
        ChildProcess current = start();
        children.Add(current);
        await current.WaitLineAsync(readyLine, ct);

        await using var load = LoadLoop.Start(port, UnixPath, Workers, ct);
        await load.WaitForRequestsAsync(Workers, ct);
        for (int i = 0; i < Restarts; i++)
        {
            long before = load.Answered;
            if (stopFirst is not null)
            {
                await stopFirst(current);
            }

            ChildProcess next = start();
            children.Add(next);
            await switched(current, next);
            current = next;
            // Some load on each instance, so each restart happens under load.
            await load.WaitForRequestsAsync(before + Workers, ct);
        }

        return (await load.StopAsync(), current);
    }

    private ChildProcess StartChild(string transport, int port, string handOffPath) =>
        ChildProcess.Start(ChildProcess.DotnetHost(), ChildProcess.TestChildArguments("handoff", transport, UnixPath, port.ToString(System.Globalization.CultureInfo.InvariantCulture), handOffPath));

    /// <summary>A loopback port free now (the kernel picked it); the children bind it one after another.</summary>
    internal static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}
