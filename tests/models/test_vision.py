import pytest
import torch
import torch.nn.functional as F
from hydra import initialize_config_dir

from rnnlab.contract import InputKind
from rnnlab.data.lessons.mnist import MNISTData
from rnnlab.errors import UserError
from rnnlab.models.feedforward import MLP
from rnnlab.models.vision import InceptionA, InceptionNet, ResidualBlock, ResidualNet, SimpleCNN
from rnnlab.run.checks import options_fitting
from tests.project import CONF_DIR, write_mnist

MNIST_SIZE = [1, 28, 28]
NETWORKS = {"cnn": SimpleCNN, "inception": InceptionNet, "resnet": ResidualNet}


@pytest.mark.parametrize(
    ("network", "fc_inputs"), [(SimpleCNN, 320), (InceptionNet, 1408), (ResidualNet, 512)]
)
def test_shapes_on_mnist_are_the_lessons(network, fc_inputs: int):
    torch.manual_seed(0)
    model = network(MNIST_SIZE, 10)
    assert model.fc.in_features == fc_inputs and model.fc.out_features == 10
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert InputKind.IMAGES in network.accepts and InputKind.TOKENS not in network.accepts


def test_sizes_follow_the_data():
    model = SimpleCNN([3, 32, 32], 7)  # CIFAR-sized: 20 channels of 5x5
    assert model.fc.in_features == 20 * 5 * 5
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_inception_block_gives_88_channels_of_the_same_size():
    block = InceptionA(10)
    assert block(torch.randn(2, 10, 12, 12)).shape == (2, 88, 12, 12)
    assert InceptionA.out_channels == 88


def test_residual_block_adds_its_input():
    block = ResidualBlock(4)
    for conv in (block.conv1, block.conv2):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(block(x), F.relu(x))  # with zero convolutions only the skip is left
    assert ResidualBlock(16)(torch.randn(1, 16, 12, 12)).shape == (1, 16, 12, 12)


@pytest.mark.parametrize("network", [SimpleCNN, InceptionNet, ResidualNet])
def test_too_small_image_names_the_smallest_size(network):
    with pytest.raises(
        UserError, match=f"{network.__name__} needs images of at least 16x16 pixels, got 15x28"
    ):
        network([1, 15, 28], 10)
    network([1, 16, 16], 10)  # the smallest works


def test_input_size_must_be_an_image():
    with pytest.raises(UserError, match=r"SimpleCNN takes images \[C, H, W\]; got input_size=\[784\]"):
        SimpleCNN([784], 10)


def test_configs_named_for_images_exist():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for_images = options_fitting("model", lambda cls: InputKind.IMAGES in getattr(cls, "accepts", ()))
    assert set(NETWORKS) <= set(for_images) and "lstm" not in for_images


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> tuple[torch.Tensor, torch.Tensor]:
    """300 synthetic training digits, written as MNIST files and read back through MNISTData."""
    folder = write_mnist(tmp_path_factory.mktemp("mnist"), n_train=330, n_test=10, seed=1)
    data = MNISTData(path=str(folder), val_size=30)
    data.setup()
    return data.splits["train"]


@pytest.fixture
def one_thread():
    """One intra-op thread: small convolutions gain nothing from more, and lose a lot on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "make",
    [
        lambda: MLP(MNIST_SIZE, 10, hidden_sizes=(64, 32)),
        lambda: SimpleCNN(MNIST_SIZE, 10),
        lambda: InceptionNet(MNIST_SIZE, 10),
        lambda: ResidualNet(MNIST_SIZE, 10),
    ],
    ids=["mlp", "cnn", "inception", "resnet"],
)
def test_learns_the_synthetic_digits(digits, make, one_thread):
    images, labels = digits
    torch.manual_seed(0)
    model = make()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(4):
        for batch in torch.randperm(len(images)).split(32):
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = (model(images).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.95
