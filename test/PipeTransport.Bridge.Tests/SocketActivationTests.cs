using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>
/// accept-fd: under systemd socket activation, run by systemd-socket-activate (the systemd package's
/// tool that passes a listening socket as fd 3 with LISTEN_FDS/LISTEN_PID, as systemd does). The first
/// test runs the socket-activated unit pair of docs/pipebridge-service.md.
/// </summary>
public sealed partial class SocketActivationTests
{
    /// <summary>
    /// <c>pipebridge -d -d accept-fd:,fork unix-connect:APP.sock</c> (the fd from LISTEN_FDS): a Unix-socket
    /// service reachable over TCP; socat clients at once, each echoed by the socat service.
    /// </summary>
    [Test, CancelAfter(60_000)]
    public async Task ServesTheActivatedSocketWithFork(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string appSocket = dir["app.sock"];
        await using var app = BridgeProcess.StartSocat($"UNIX-LISTEN:{appSocket},fork", "EXEC:cat");
        await app.WaitListeningAsync(cancellationToken);
        (BridgeProcess activated, int port) = await ActivateAsync(["-d", "-d", "accept-fd:,fork", $"unix-connect:{appSocket}"], cancellationToken);
        await using (activated)
        {
            await Task.WhenAll(Enumerable.Range(0, 3).Select(async i =>
            {
                await using var client = BridgeProcess.StartSocat($"TCP:127.0.0.1:{port}", "STDIO");
                await client.Process.StandardInput.WriteAsync($"activated {i}\n");
                client.Process.StandardInput.Close();
                Assert.That(await client.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.EqualTo($"activated {i}\n"));
                Assert.That(await client.WaitExitAsync(cancellationToken), Is.Zero, client.Stderr);
            }));
            Assert.That(await activated.WaitListeningAsync(cancellationToken), Is.EqualTo($"accept-fd:,fork (127.0.0.1:{port})"));

            activated.Signal(Signum.SIGTERM);
            Assert.That(await activated.WaitExitAsync(cancellationToken), Is.EqualTo(143), activated.Stderr);
        }
    }

    /// <summary>
    /// accept-fd:3 (the fd written out), one connection, exec: the child has fds 0, 1 and 2 only (not
    /// the inherited listening socket) and no LISTEN_FDS.
    /// </summary>
    [Test, CancelAfter(60_000)]
    public async Task TheInheritedSocketDoesNotReachChildren(CancellationToken cancellationToken)
    {
        const string report = "exec:python3 -c \"import os; print(' '.join(str(f) for f in range(1024) if os.path.exists('/proc/self/fd/%d' % f)), os.environ.get('LISTEN_FDS', '-'))\"";
        (BridgeProcess activated, int port) = await ActivateAsync(["accept-fd:3", report], cancellationToken);
        await using (activated)
        {
            await using var client = BridgeProcess.StartSocat($"TCP:127.0.0.1:{port}", "STDIO");
            Assert.That(await client.Process.StandardOutput.ReadLineAsync(cancellationToken), Is.EqualTo("0 1 2 -"));
            client.Process.StandardInput.Close();
            Assert.That(await activated.WaitExitAsync(cancellationToken), Is.Zero, activated.Stderr);
        }
    }

    /// <summary>LISTEN_PID of another process: the sockets are not ours (sd_listen_fds' rule), a usage error.</summary>
    [Test, CancelAfter(20_000)]
    public async Task ListenFdsOfAnotherProcessAreRefused(CancellationToken cancellationToken)
    {
        var info = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(BridgeProcess.DllPath);
        info.ArgumentList.Add("accept-fd:");
        info.ArgumentList.Add("stdio");
        info.Environment["LISTEN_PID"] = "1";
        info.Environment["LISTEN_FDS"] = "1";
        using var process = System.Diagnostics.Process.Start(info)!;
        string stderr = await process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        Assert.That(process.ExitCode, Is.EqualTo(2), stderr);
        Assert.That(stderr, Does.Contain("LISTEN_PID=1 is not this process"));
    }

    /// <summary>accept-fd:N whose fd is not a listening socket: exit 1 naming the address.</summary>
    [TestCase("accept-fd:0", "pipebridge: accept-fd:0: fd 0 is not a listening socket")]
    [TestCase("accept-fd:917", "pipebridge: accept-fd:917: fcntl: EBADF (Bad file descriptor)")]
    [CancelAfter(20_000)]
    public async Task AnFdThatDoesNotListenIsAnIoError(string address, string expected, CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start(address, "pipe");
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.EqualTo(1));
        Assert.That(bridge.Stderr, Is.EqualTo(expected));
    }

    /// <summary>
    /// systemd-socket-activate -l 127.0.0.1:PORT dotnet pipebridge.dll ARGS, once it listens. It needs a
    /// fixed port: a free one is taken from the kernel and tried again if someone else takes it first.
    /// </summary>
    private static async Task<(BridgeProcess, int)> ActivateAsync(string[] args, CancellationToken cancellationToken)
    {
        for (int attempt = 0; ; attempt++)
        {
            int port = FreeTcpPort();
            var activated = BridgeProcess.StartProgram("systemd-socket-activate",
                ["-l", $"127.0.0.1:{port}", "dotnet", BridgeProcess.DllPath, .. args], redirectStdio: false);
            try
            {
                await activated.WaitLineAsync(ListeningAsFd3(), cancellationToken);
                return (activated, port);
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                await activated.DisposeAsync();
            }
        }
    }

    private static int FreeTcpPort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    [GeneratedRegex(@"^(Listening on 127\.0\.0\.1:\d+ as 3\.)$")]
    private static partial Regex ListeningAsFd3();
}
