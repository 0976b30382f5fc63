using System.Net.Sockets;

namespace PipeTransport.Bridge;

/// <summary>An I/O error on one address: exit code 1 and one line "pipebridge: ADDRESS: OPERATION: ERRNO (message)".</summary>
internal sealed class BridgeFailure(Address address, string detail, Exception? inner = null)
    : Exception($"{address}: {detail}", inner)
{
    public Address Address { get; } = address;

    /// <summary>Describes <paramref name="error"/> as a failure of <paramref name="address"/>.</summary>
    public static BridgeFailure From(Address address, Exception error) => error switch
    {
        BridgeFailure failure => failure,
        PipeTransportException e => new BridgeFailure(address, $"{e.Operation}: {Describe((int)e.Errno)}", e),
        SocketException e => new BridgeFailure(address, $"{OperationOf(e)}: {Describe(e.SocketErrorCode, e)}", e),
        FileNotFoundException or DirectoryNotFoundException => new BridgeFailure(address, $"open: {Describe((int)Mono.Unix.Native.Errno.ENOENT)}", error),
        UnauthorizedAccessException => new BridgeFailure(address, $"open: {Describe((int)Mono.Unix.Native.Errno.EACCES)}", error),
        System.ComponentModel.Win32Exception e when e.NativeErrorCode is > 0 and < 4096
            => new BridgeFailure(address, $"exec: {Describe(e.NativeErrorCode)}", e),
        PathTooLongException => new BridgeFailure(address, $"open: {Describe((int)Mono.Unix.Native.Errno.ENAMETOOLONG)}", error),
        // On Unix the runtime's IOException carries the errno as its HResult.
        IOException e when e.GetType() == typeof(IOException) && e.HResult > 0 && e.HResult < 4096
            => new BridgeFailure(address, $"open: {Describe(e.HResult)}", error),
        _ => new BridgeFailure(address, error.Message, error),
    };

    /// <summary>"ECONNREFUSED (Connection refused)".</summary>
    public static string Describe(int errno) => PipeTransport.Interop.ErrnoText.Describe(errno);

    private static string Describe(SocketError error, SocketException e) =>
        e.NativeErrorCode > 0 && e.NativeErrorCode < 4096 ? Describe(e.NativeErrorCode) : $"{error} ({e.Message})";

    private static string OperationOf(SocketException e) =>
        e.SocketErrorCode == SocketError.HostNotFound || e.SocketErrorCode == SocketError.TryAgain || e.SocketErrorCode == SocketError.NoData
            ? "resolve" : "socket";
}
