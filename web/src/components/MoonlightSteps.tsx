export function MoonlightSteps({ address, port }: { address?: string; port?: number }) {
  return (
    <ol className="steps-list">
      <li>
        Open <strong>Moonlight</strong> on the device you want to stream to (phone, TV, Steam Deck, PC). Get it from
        your app store or moonlight-stream.org.
      </li>
      <li>
        This host should appear by itself. If it does not, tap <strong>Add host</strong> and enter{' '}
        {address ? <code>{address}</code> : "this box's address"}
        {port && port !== 47989 ? (
          <>
            {' '}
            (port <code>{port}</code>)
          </>
        ) : null}
        .
      </li>
      <li>Select the host. Moonlight shows a 4-digit PIN.</li>
      <li>Type that PIN below and press Pair device.</li>
    </ol>
  );
}
