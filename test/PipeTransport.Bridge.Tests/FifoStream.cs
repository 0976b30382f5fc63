namespace PipeTransport.Bridge.Tests;

/// <summary>Opens a FIFO end as a blocking FileStream without hanging the test if the peer never comes.</summary>
internal static class FifoStream
{
    public static async Task<Stream> OpenAsync(string path, FileAccess access, CancellationToken cancellationToken)
    {
        Task<FileStream> open = Task.Factory.StartNew(
            () => new FileStream(path, FileMode.Open, access, FileShare.ReadWrite, bufferSize: 0),
            cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        // A blocked open(2) cannot be cancelled; opening the FIFO O_RDWR (which never blocks) releases it.
        using CancellationTokenRegistration release = cancellationToken.Register(() =>
        {
            try { new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite, bufferSize: 0).Dispose(); }
            catch (IOException) { }
        });
        FileStream stream = await open;
        if (cancellationToken.IsCancellationRequested)
        {
            await stream.DisposeAsync();
            cancellationToken.ThrowIfCancellationRequested();
        }
        return stream;
    }
}
