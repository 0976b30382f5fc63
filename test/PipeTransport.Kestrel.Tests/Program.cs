using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// The test application's entry point (what Microsoft.Testing.Platform would generate), and with
/// <c>--child kestrel pipe|sockets HEADROOM</c> a small server a test runs as a real process, under
/// limits it cannot impose on itself; with <c>--child systemd listenhandle|usesystemd</c> the app of
/// docs/systemd.md, started by <c>systemd-socket-activate</c>; with
/// <c>--child handoff pipe|sockets UNIXPATH PORT HANDOFFPATH</c> the app of docs/handoff.md.
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args is ["--child", "kestrel", string transport, string headroom])
        {
            return await KestrelServerAsync(transport == "pipe", int.Parse(headroom, CultureInfo.InvariantCulture));
        }

        if (args is ["--child", "handoff", "pipe" or "sockets", string unixPath, string port, string handOffPath])
        {
            return await HandOffServerAsync(args[2] == "pipe", unixPath, int.Parse(port, CultureInfo.InvariantCulture), handOffPath);
        }

        if (args is ["--child", "systemd", "listenhandle" or "usesystemd"])
        {
            return await SocketActivatedServerAsync(useSystemd: args[2] == "usesystemd");
        }

        Microsoft.Testing.Platform.Builder.ITestApplicationBuilder builder = await Microsoft.Testing.Platform.Builder.TestApplication.CreateBuilderAsync(args);
        SelfRegisteredExtensions.AddSelfRegisteredExtensions(builder, args);
        using Microsoft.Testing.Platform.Builder.ITestApplication app = await builder.BuildAsync();
        return await app.RunAsync();
    }

    /// <summary>A child app's builder: no config reload, single-line console logs of warnings (and of the transport's information when asked).</summary>
    private static WebApplicationBuilder ChildAppBuilder(bool transportInformation)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = "PipeTransport.Kestrel.Tests",
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        if (transportInformation)
        {
            builder.Logging.AddFilter(PipeTransportLog.Category, LogLevel.Information);
        }

        return builder;
    }

    /// <summary>
    /// Answers <c>GET /</c> with "hello" on 127.0.0.1 (any port), over PipeTransport or Kestrel's
    /// Sockets transport; prints <c>listening PORT</c>, logs warnings and errors (and the transport's
    /// information) to stderr, and stops
    /// when stdin closes.
    /// </summary>
    private static async Task<int> KestrelServerAsync(bool pipeTransport, int headroom)
    {
        WebApplicationBuilder builder = ChildAppBuilder(transportInformation: true);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        if (pipeTransport)
        {
            builder.WebHost.UsePipeTransport(o => o.FdHeadroom = headroom);
        }

        await using WebApplication app = builder.Build();
        app.MapGet("/", () => "hello");
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Console.WriteLine($"listening {new Uri(address).Port}");
        await StdinClosedAsync();
        await app.StopAsync();
        return 0;
    }

    /// <summary>
    /// The app of docs/systemd.md: serves the sockets systemd (or <c>systemd-socket-activate</c>) passed,
    /// through <c>ListenHandle(3)</c> or Kestrel's <c>UseSystemd()</c>. Answers <c>GET /</c>, <c>POST /sha256</c>
    /// and <c>GET /activation</c> (its pid, LISTEN_PID, LISTEN_FDS and the caller's pid on a Unix socket);
    /// prints <c>listening</c> once started and stops when stdin closes.
    /// </summary>
    private static async Task<int> SocketActivatedServerAsync(bool useSystemd)
    {
        WebApplicationBuilder builder = ChildAppBuilder(transportInformation: false);
        builder.WebHost.UsePipeTransport();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = null;
            if (useSystemd)
            {
                k.UseSystemd();     // every socket passed (LISTEN_FDS from fd 3 on), when LISTEN_PID is ours
            }
            else
            {
                k.ListenHandle(3);  // SD_LISTEN_FDS_START: the first socket passed
            }
        });

        await using WebApplication app = builder.Build();
        app.MapGet("/", () => "hello");
        app.MapPost("/sha256", TestServer.HashBodyAsync);
        app.MapGet("/activation", (HttpContext c) =>
            $"{Environment.ProcessId} {Environment.GetEnvironmentVariable("LISTEN_PID")} {Environment.GetEnvironmentVariable("LISTEN_FDS")} "
            + (c.Features.Get<IPeerCredentialsFeature>()?.PeerCredentials?.ProcessId.ToString(CultureInfo.InvariantCulture) ?? "none"));
        await app.StartAsync();
        Console.WriteLine("listening");
        await StdinClosedAsync();
        await app.StopAsync();
        return 0;
    }

    /// <summary>
    /// The app of docs/handoff.md: answers <c>GET /</c> with "hello PID" on 127.0.0.1:PORT and on the Unix
    /// socket UNIXPATH ("-": none), over PipeTransport with hand-off at HANDOFFPATH ("-": none) or over
    /// Kestrel's Sockets transport. Runs like <c>app.Run()</c>: it stops on SIGTERM, or when a successor
    /// took over. Prints <c>ready PID</c> once started and <c>stopped PID</c> after its graceful stop.
    /// </summary>
    private static async Task<int> HandOffServerAsync(bool pipeTransport, string unixPath, int port, string handOffPath)
    {
        WebApplicationBuilder builder = ChildAppBuilder(transportInformation: true);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, port);
            if (unixPath != "-")
            {
                k.ListenUnixSocket(unixPath);
            }
        });
        if (pipeTransport)
        {
            builder.WebHost.UsePipeTransport(o => o.HandOff = handOffPath == "-" ? null : new HandOffOptions(handOffPath));
        }

        await using WebApplication app = builder.Build();
        string hello = $"hello {Environment.ProcessId}";
        app.MapGet("/", () => hello);
        app.Lifetime.ApplicationStarted.Register(() => Console.WriteLine($"ready {Environment.ProcessId}"));
        await app.RunAsync();
        Console.WriteLine($"stopped {Environment.ProcessId}");
        return 0;
    }

    /// <summary>Completes when stdin reaches EOF (the test closed it, or died).</summary>
    private static Task StdinClosedAsync()
    {
        var stdinClosed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        new Thread(() =>
        {
            Console.In.ReadToEnd();
            stdinClosed.SetResult();
        })
        { IsBackground = true }.Start();
        return stdinClosed.Task;
    }
}
